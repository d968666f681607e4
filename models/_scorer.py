"""Hot-swappable scoring: a running worker moves to a new model version safely.

:class:`Scorer` holds one model reference. :meth:`Scorer.score` reads it once,
so a batch is scored entirely by one version and the result says which;
:meth:`Scorer.swap` / :meth:`Scorer.reload` replace the reference only after
the new model is fully loaded and checked. Nothing is queued or dropped here:
every batch handed to ``score`` is scored exactly once, by the version in
place when it started.

>>> from riskflow.models import Ensemble, Scorer, make_synthetic
>>> d = make_synthetic(n=3000, seed=0)
>>> m = Ensemble(mlp_params={"max_epochs": 1}).fit(d.X[:2000], d.y[:2000], d.X[2000:],
...     d.y[2000:], feature_names=d.feature_names, kinds=d.kinds)
>>> out = Scorer(m).score(d.X[:5])
>>> out.scores.shape, out.version is None
((5,), True)
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from riskflow.models._artifact import MANIFEST, load_model, read_manifest
from riskflow.models._ensemble import Ensemble

__all__ = ["Scorer", "ScoredBatch", "pin_threads"]


def pin_threads(num_threads: int) -> None:
    """Pin torch's intra-op and BLAS threads (process-wide) for a streaming worker.

    One thread per worker is the default: a worker scores small batches,
    where threads cost more in hand-off than they win, and several workers
    share the cores. LightGBM takes its thread count per call (from the model).
    """
    import torch
    from threadpoolctl import threadpool_limits

    if torch.get_num_threads() != num_threads:
        torch.set_num_threads(num_threads)
    # The MLP's serving path multiplies matrices with numpy's BLAS: same cap.
    threadpool_limits(limits=num_threads, user_api="blas")


def _warm_up(model: Ensemble) -> None:
    """Score and explain one blank row, so JIT compilation never delays a real batch.

    The TreeSHAP kernel's first call would otherwise land on the first flagged transaction.
    """
    blank = np.zeros((1, model.n_features_in_), dtype=np.float32)
    model.score(blank)
    if "lightgbm" in model.members_:
        model.reason_codes(blank, [0])


@dataclass(frozen=True)
class ScoredBatch:
    """A batch's calibrated scores, raw member scores and the model version used."""

    scores: np.ndarray
    members: dict[str, np.ndarray]
    version: str | None
    model: Ensemble


class Scorer:
    """Holds the current model; scores batches; swaps versions between batches.

    Parameters
    ----------
    model
        The model to start with.
    path
        Model directory to reload from (:meth:`reload`, :meth:`reload_if_changed`).
    expected_catalogue_hash
        Passed to :func:`~riskflow.models.load_model` on every reload, so a
        model for another feature catalogue is refused and the old one kept.
    num_threads
        Threads for LightGBM / torch (``config.model.num_threads``).
    """

    def __init__(
        self,
        model: Ensemble,
        *,
        path: str | Path | None = None,
        expected_catalogue_hash: str | None = None,
        num_threads: int = 1,
    ) -> None:
        self._model = model
        self.path = Path(path) if path is not None else None
        self.expected_catalogue_hash = expected_catalogue_hash
        self.num_threads = num_threads
        self._lock = threading.Lock()
        self._manifest_stamp: Any = self._stamp()
        self.batches_by_version: Counter[str | None] = Counter()
        self.last_reload_error: str | None = None
        pin_threads(num_threads)
        _warm_up(model)

    @classmethod
    def from_path(
        cls, path: str | Path, *, expected_catalogue_hash: str | None = None, num_threads: int = 1
    ) -> Scorer:
        """Load the model at ``path`` and watch that directory."""
        model = load_model(
            path, expected_catalogue_hash=expected_catalogue_hash, num_threads=num_threads
        )
        return cls(
            model,
            path=path,
            expected_catalogue_hash=expected_catalogue_hash,
            num_threads=num_threads,
        )

    @property
    def model(self) -> Ensemble:
        """The model new batches are scored with."""
        return self._model

    @property
    def version(self) -> str | None:
        return self._model.version

    def score(self, X: np.ndarray) -> ScoredBatch:
        """Score one batch with exactly one model version."""
        model = self._model  # one read: a concurrent swap affects the next batch only
        scores, members = model.score(X)
        self.batches_by_version[model.version] += 1
        return ScoredBatch(scores, members, model.version, model)

    def swap(self, model: Ensemble) -> Ensemble:
        """Make ``model`` current for the next batch; return the previous one."""
        if not hasattr(model, "members_"):
            raise ValueError("Only a fitted model can be swapped in.")
        if model.n_features_in_ != self._model.n_features_in_:
            raise ValueError(
                f"The new model expects {model.n_features_in_} features, the current one "
                f"{self._model.n_features_in_}; they cannot serve the same feature engine."
            )
        with self._lock:
            old, self._model = self._model, model
        return old

    def _stamp(self) -> Any:
        if self.path is None:
            return None
        try:
            st = (self.path / MANIFEST).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def reload(self) -> bool:
        """Load the model at :attr:`path` and swap it in if its version is new.

        Returns True if the version changed. Raises
        :class:`~riskflow.errors.ArtifactError` (current model kept) if the new
        artifact is corrupted or built for another feature catalogue.
        """
        if self.path is None:
            raise ValueError("This Scorer has no model path to reload from.")
        manifest = read_manifest(self.path)
        if manifest.get("version") == self._model.version:
            return False
        model = load_model(
            self.path,
            expected_catalogue_hash=self.expected_catalogue_hash,
            num_threads=self.num_threads,
        )
        _warm_up(model)
        self.swap(model)
        return True

    def reload_if_changed(self) -> bool:
        """Cheap poll (one ``stat``) for a new manifest; reload if there is one.

        Meant to run between batches. A failed reload keeps the current model
        and records why in :attr:`last_reload_error`; it returns False.
        """
        from riskflow.errors import ArtifactError

        stamp = self._stamp()
        if stamp is None or stamp == self._manifest_stamp:
            return False
        # Remember the stamp even on failure: a broken artifact is retried only
        # once it is rewritten, not on every batch.
        self._manifest_stamp = stamp
        try:
            changed = self.reload()
        except ArtifactError as exc:
            self.last_reload_error = str(exc)
            return False
        self.last_reload_error = None
        return changed
