"""The neural-network member: a torch MLP over standardised features.

Inputs: numeric columns go through a signed ``log1p`` (counts and amounts are
heavy-tailed), are standardised with training means and deviations, clipped,
and absent values (NaN) become 0 plus a missing-indicator column. Categorical
columns (MCC, channel, ...) go through learned embeddings over a vocabulary of
their frequent training values (index 0 = rare, unseen or absent).

Every learned number (weights, means, deviations, vocabularies) is a tensor in
the module's ``state_dict``, so the artifact is one ``torch.save`` of tensors,
read back with ``torch.load(weights_only=True)``; the architecture is a small
JSON-ready dict (:meth:`MLPMember.config`).

Training: Adam on a positive-weighted BCE (weight sqrt(neg/pos)), shuffled
mini-batches from a seeded generator, early stopping on validation average
precision with the best epoch's weights restored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from riskflow.errors import ArtifactError
from riskflow.models._mlp_kernels import (
    _forward_blocks,
    _forward_rows,
    _prepare_rows,
    cache_aligned,
    tile_panels,
)

__all__ = ["MLPMember", "DEFAULT_HIDDEN"]

Progress = Callable[[str, int, int, str], None]
#: Hidden layer widths of the production default. (64, 32) was measured on the
#: standard dataset (2026-11-29): the member's test AP fell 0.6563 -> 0.6197 and
#: the ensemble's 0.7019 -> 0.6964 (0.002 above LightGBM alone), for 15 us a
#: row (serving kernel 40.7 -> 25.8 us at batch 512), so (128, 64) stays.
DEFAULT_HIDDEN: tuple[int, ...] = (128, 64)
#: Rows per BLAS block: ~1 MB of activations, so they stay in cache between layers.
_BLAS_BLOCK_ROWS = 2048
#: Runtimes of :meth:`MLPMember.decision_function` besides torch.
_RUNTIMES = ("numpy", "fused", "rowwise", "blas")


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


class _Net(nn.Module):
    """Preprocessing buffers + embeddings + MLP; forward takes prepared tensors."""

    center: torch.Tensor
    scale: torch.Tensor

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        n_num = len(cfg["numeric"])
        n_miss = len(cfg["missing"])
        self.register_buffer("center", torch.zeros(n_num, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(n_num, dtype=torch.float64))
        self.embeddings = nn.ModuleList(
            nn.Embedding(size + 1, dim)
            for size, dim in zip(cfg["vocab_sizes"], cfg["emb_dims"], strict=True)
        )
        for i, size in enumerate(cfg["vocab_sizes"]):
            self.register_buffer(f"vocab_{i}", torch.zeros(size, dtype=torch.float64))
        width = n_num + n_miss + sum(cfg["emb_dims"])
        layers: list[nn.Module] = []
        for h in cfg["hidden"]:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(cfg["dropout"])]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, dense: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
        parts = [dense]
        for i, emb in enumerate(self.embeddings):
            parts.append(emb(cats[:, i]))
        return self.mlp(torch.cat(parts, dim=1)).squeeze(1)


class MLPMember:
    """Multi-layer perceptron with categorical embeddings and early stopping.

    Parameters
    ----------
    hidden, dropout
        Widths of the hidden layers; dropout after each.
    lr, weight_decay, batch_size
        Adam settings and mini-batch size (default: about 50 steps per epoch,
        between 64 and 1024 rows, so small data sets still train).
    max_epochs, patience
        Upper bound on epochs; epochs without a better validation AP before stopping.
    max_rows
        Train on at most this many rows: every fraud plus a seeded sample of
        legitimate rows (epochs on millions of rows cost minutes and add
        little; the calibration fitted afterwards corrects the shifted base rate).
    max_vocab, min_count
        Per categorical column: keep at most ``max_vocab`` values seen at least
        ``min_count`` times in training; the rest share one embedding.
    seed, num_threads
        Fixed seed (initialisation, shuffling, dropout); torch threads while fitting.
    """

    name = "mlp"

    def __init__(
        self,
        *,
        hidden: Sequence[int] = DEFAULT_HIDDEN,
        dropout: float = 0.1,
        lr: float = 2e-3,
        weight_decay: float = 1e-5,
        batch_size: int | None = None,
        max_epochs: int = 30,
        patience: int = 4,
        max_vocab: int = 256,
        min_count: int = 5,
        max_rows: int | None = 300_000,
        seed: int = 0,
        num_threads: int = 1,
    ) -> None:
        self.max_rows = max_rows
        self.hidden = tuple(hidden)
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.max_vocab = max_vocab
        self.min_count = min_count
        self.seed = seed
        self.num_threads = num_threads

    # -- preparation ------------------------------------------------------
    def _prepare_arrays(
        self, X: np.ndarray, dtype: type = np.float32
    ) -> tuple[np.ndarray, np.ndarray]:
        """Dense inputs (float32 values, stored as ``dtype``) and category codes."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X must have {self.n_features_in_} feature columns. Got shape {X.shape} instead."
            )
        n = X.shape[0]
        dense: np.ndarray = np.empty((n, self._num_idx.size + self._miss_idx.size), dtype=dtype)
        cats = np.empty((n, self._cat_idx.size), dtype=np.int64)
        _prepare_rows(
            X,
            self._num_idx,
            self._center,
            self._scale,
            self._miss_idx,
            self._cat_idx,
            self._vocab_values,
            self._vocab_offset,
            dense,
            cats,
        )
        return dense, cats

    def _prepare(self, X: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        dense, cats = self._prepare_arrays(X)
        return torch.from_numpy(dense), torch.from_numpy(cats)

    def _learn_preprocessing(self, X: np.ndarray, categorical: Sequence[int]) -> dict[str, Any]:
        F = X.shape[1]
        cat_idx = sorted(set(categorical))
        num_idx = [j for j in range(F) if j not in cat_idx]
        num = _signed_log1p(X[:, num_idx].astype(np.float64))
        finite = np.isfinite(num)
        has_nan = np.isnan(num).any(axis=0)
        count = np.maximum(finite.sum(axis=0), 1)
        filled = np.where(finite, num, 0.0)
        center = filled.sum(axis=0) / count
        sd = np.sqrt((np.where(finite, num - center, 0.0) ** 2).sum(axis=0) / count)
        scale = np.where(sd > 1e-9, sd, 1.0)
        vocabs = []
        for col in cat_idx:
            v = X[:, col].astype(np.float64)
            v = v[np.isfinite(v) & (v >= 0)]
            values, counts = np.unique(v, return_counts=True)
            keep = counts >= self.min_count
            values, counts = values[keep], counts[keep]
            if values.size > self.max_vocab:
                top = np.argsort(-counts, kind="stable")[: self.max_vocab]
                values = values[top]
            vocabs.append(np.sort(values))
        missing = [int(num_idx[p]) for p in np.flatnonzero(has_nan)]
        self._set_layout(num_idx, cat_idx, missing, center, scale, vocabs)
        return {
            "n_features": F,
            "numeric": [int(j) for j in num_idx],
            "categorical": [int(j) for j in cat_idx],
            "missing": missing,
            "vocab_sizes": [int(v.size) for v in vocabs],
            "emb_dims": [int(min(16, max(2, round(1.6 * (v.size + 1) ** 0.56)))) for v in vocabs],
            "hidden": [int(h) for h in self.hidden],
            "dropout": float(self.dropout),
        }

    def _subsample(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keep every fraud and a seeded uniform sample of the rest, ``max_rows`` in all."""
        if self.max_rows is None or len(y) <= self.max_rows:
            return X, y
        pos = np.flatnonzero(y == 1)
        neg = np.flatnonzero(y != 1)
        keep = max(self.max_rows - pos.size, 0)
        rng = np.random.default_rng(self.seed)
        rows = np.sort(
            np.concatenate([pos, rng.choice(neg, size=min(keep, neg.size), replace=False)])
        )
        return X[rows], y[rows]

    def _set_layout(
        self,
        num_idx: Sequence[int],
        cat_idx: Sequence[int],
        missing: Sequence[int],
        center: np.ndarray,
        scale: np.ndarray,
        vocabs: list[np.ndarray],
    ) -> None:
        self._num_idx = np.asarray(num_idx, dtype=np.int64)
        self._cat_idx = np.asarray(cat_idx, dtype=np.int64)
        self._miss_idx = np.asarray(missing, dtype=np.int64)
        self._center = np.ascontiguousarray(center, dtype=np.float64)
        self._scale = np.ascontiguousarray(scale, dtype=np.float64)
        self._vocabs = vocabs
        self._vocab_values = np.ascontiguousarray(
            np.concatenate(vocabs) if vocabs else np.zeros(0), dtype=np.float64
        )
        self._vocab_offset = np.cumsum([0, *(v.size for v in vocabs)]).astype(np.int64)

    def _load_buffers_into(self, net: _Net) -> None:
        net.center.copy_(torch.from_numpy(self._center))
        net.scale.copy_(torch.from_numpy(self._scale))
        for i, v in enumerate(self._vocabs):
            getattr(net, f"vocab_{i}").copy_(torch.from_numpy(v))

    # -- training ---------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_valid: np.ndarray,
        y_valid: np.ndarray,
        *,
        categorical: Sequence[int] = (),
        progress: Progress | None = None,
    ) -> MLPMember:
        from sklearn.metrics import average_precision_score

        self.n_features_in_ = int(X.shape[1])
        X, y = self._subsample(np.asarray(X, dtype=np.float32), np.asarray(y))
        cfg = self._learn_preprocessing(X, categorical)
        threads = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                net = _Net(cfg)
                self._load_buffers_into(net)
                dense, cats = self._prepare(X)
                dense_v, cats_v = self._prepare(X_valid)
                target = torch.from_numpy(np.asarray(y, dtype=np.float32))
                pos = max(float(np.sum(y)), 1.0)
                pos_weight = torch.tensor(max((len(y) - pos) / pos, 1.0) ** 0.5)
                loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
                opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
                gen = torch.Generator().manual_seed(self.seed)
                has_valid_pos = 0 < int(np.sum(y_valid)) < len(y_valid)
                batch = self.batch_size or int(np.clip(len(target) // 50, 64, 1024))
                best_ap, best_state, best_epoch, stale = -1.0, None, 0, 0
                for epoch in range(1, self.max_epochs + 1):
                    net.train()
                    order = torch.randperm(len(target), generator=gen)
                    for start in range(0, len(order), batch):
                        idx = order[start : start + batch]
                        opt.zero_grad(set_to_none=True)
                        loss = loss_fn(net(dense[idx], cats[idx]), target[idx])
                        loss.backward()
                        opt.step()
                    net.eval()
                    with torch.inference_mode():
                        logits = _batched(net, dense_v, cats_v)
                    ap = (
                        float(average_precision_score(y_valid, logits))
                        if has_valid_pos
                        else -float(
                            loss_fn(
                                torch.from_numpy(logits),
                                torch.from_numpy(np.asarray(y_valid, np.float32)),
                            )
                        )
                    )
                    if ap > best_ap + 1e-6:
                        best_ap, best_epoch, stale = ap, epoch, 0
                        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                    else:
                        stale += 1
                    if progress is not None:
                        progress("mlp", epoch, self.max_epochs, f"valid AP {ap:.4f}")
                    if stale >= self.patience:
                        break
                assert best_state is not None
                net.load_state_dict(best_state)
        finally:
            torch.set_num_threads(threads)
        net.eval()
        self.net_ = net
        self.config_ = cfg
        self.best_epoch_ = best_epoch
        self.best_valid_score_ = best_ap
        self._compile()
        return self

    # -- state ------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Architecture and preprocessing layout (JSON-ready)."""
        return dict(self.config_)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every learned tensor (weights and preprocessing buffers)."""
        return self.net_.state_dict()

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, torch.Tensor]) -> MLPMember:
        """Rebuild a fitted member from :meth:`config` and :meth:`state_dict`."""
        try:
            net = _Net(config)
            net.load_state_dict(state, strict=True)
        except (KeyError, TypeError, RuntimeError, ValueError) as exc:
            raise ArtifactError(
                f"The MLP weights do not fit its recorded architecture ({exc}). The artifact "
                "is corrupted or mixes files from two trainings; retrain with `riskflow train`."
            ) from exc
        net.eval()
        m = cls(hidden=config["hidden"], dropout=config["dropout"])
        m.net_ = net
        m.config_ = dict(config)
        m.n_features_in_ = int(config["n_features"])
        m._set_layout(
            config["numeric"],
            config["categorical"],
            config["missing"],
            net.center.numpy().copy(),
            net.scale.numpy().copy(),
            [getattr(net, f"vocab_{i}").numpy().copy() for i in range(len(config["vocab_sizes"]))],
        )
        m._compile()
        return m

    # -- inference --------------------------------------------------------
    def _compile(self) -> None:
        """Fold the network into float64 numpy arrays for the serving path.

        Each categorical column's embedding times its slice of the first
        layer's weights becomes one (vocabulary, width) table, so serving
        needs a lookup and a few matrix products, without torch's per-call
        overhead (hundreds of microseconds at batch size 1). Serving runs one
        fused numba kernel (:mod:`._mlp_kernels`) over these arrays.
        """
        linears = [m for m in self.net_.mlp if isinstance(m, nn.Linear)]
        with torch.no_grad():
            w1 = linears[0].weight.detach().numpy().astype(np.float64)
            n_dense = self._num_idx.size + self._miss_idx.size
            self._w_dense = np.ascontiguousarray(w1[:, :n_dense].T)
            self._b_first = linears[0].bias.detach().numpy().astype(np.float64)
            tables, off = [], n_dense
            for emb in self.net_.embeddings:
                assert isinstance(emb, nn.Embedding)
                e = emb.weight.detach().numpy().astype(np.float64)
                tables.append(np.ascontiguousarray(e @ w1[:, off : off + e.shape[1]].T))
                off += e.shape[1]
            self._tables = tables
            self._layers = [
                (
                    np.ascontiguousarray(lin.weight.detach().numpy().T, dtype=np.float64),
                    lin.bias.detach().numpy().astype(np.float64),
                )
                for lin in linears[1:]
            ]
        if not np.isfinite(self._w_dense).all():
            # The serving kernel adds 0 * w for inputs a row's neighbours have
            # (:mod:`._mlp_kernels`): an infinite or NaN weight would make a
            # row's score depend on its batch.
            raise ArtifactError(
                "The MLP's first-layer weights are not all finite (training diverged, or the "
                "artifact is corrupted); retrain with `riskflow train`."
            )
        h1 = self._w_dense.shape[1]
        self._tables_flat = (
            np.ascontiguousarray(np.concatenate(tables)) if tables else np.zeros((0, h1))
        )
        self._table_offset = np.cumsum([0, *(t.shape[0] for t in tables)]).astype(np.int64)
        self._w_flat = np.ascontiguousarray(
            np.concatenate([w.ravel() for w, _ in self._layers]) if self._layers else np.zeros(0)
        )
        self._w_offset = np.cumsum([0, *(w.size for w, _ in self._layers)]).astype(np.int64)
        # The serving kernel's layout: each layer's weights again, in tiles of units.
        self._w1_panels = tile_panels(self._w_dense)
        panels = [tile_panels(w) for w, _ in self._layers]
        self._wp_flat = np.ascontiguousarray(np.concatenate(panels) if panels else np.zeros(0))
        self._wp_offset = np.cumsum([0, *(p.size for p in panels)]).astype(np.int64)
        self._b_flat = np.ascontiguousarray(
            np.concatenate([b for _, b in self._layers]) if self._layers else np.zeros(0)
        )
        self._b_offset = np.cumsum([0, *(b.size for _, b in self._layers)]).astype(np.int64)
        self._dims = np.asarray([h1, *(b.size for _, b in self._layers)], dtype=np.int64)
        # Vectors the kernel loads must not straddle cache lines: numpy's large
        # arrays start 16 or 32 bytes past one (tiles are whole lines apart).
        self._w1_panels = cache_aligned(self._w1_panels)
        self._wp_flat = cache_aligned(self._wp_flat)
        self._b_first = cache_aligned(self._b_first)
        self._b_flat = cache_aligned(self._b_flat)

    def decision_function(self, X: np.ndarray, *, runtime: str = "numpy") -> np.ndarray:
        """Logits (log-odds before calibration), float64 (n,).

        ``runtime``: ``"numpy"`` or ``"fused"`` (the serving path: the blocked
        kernel), ``"rowwise"`` (its per-row reference, same bits, slower),
        ``"blas"`` (matrix products) or ``"torch"`` (the training graph). They
        agree to float32 rounding. Serving never uses BLAS: its sums run in an
        order that depends on the matrix shape, so a transaction's score would
        depend on the batch it came in (replay's chunks against the stream's
        micro-batches differed in the last bit); the fused kernels compute
        every row alone, in one fixed order.
        """
        if runtime == "torch":
            dense_t, cats_t = self._prepare(X)
            with torch.inference_mode():
                return _batched(self.net_, dense_t, cats_t)
        if runtime not in _RUNTIMES:
            raise ValueError(
                f"runtime must be one of {', '.join(map(repr, _RUNTIMES))} or 'torch'. "
                f"Got {runtime!r} instead."
            )
        X = np.ascontiguousarray(X, dtype=np.float32)
        if runtime != "blas":
            if X.ndim != 2 or X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X must have {self.n_features_in_} feature columns. Got shape {X.shape} "
                    "instead."
                )
            out = np.empty(X.shape[0], dtype=np.float64)
            prep = (
                X,
                self._num_idx,
                self._center,
                self._scale,
                self._miss_idx,
                self._cat_idx,
                self._vocab_values,
                self._vocab_offset,
            )
            if runtime == "rowwise":
                _forward_rows(
                    *prep,
                    self._w_dense,
                    self._b_first,
                    self._tables_flat,
                    self._table_offset,
                    self._w_flat,
                    self._w_offset,
                    self._b_flat,
                    self._b_offset,
                    self._dims,
                    out,
                )
            else:
                _forward_blocks(
                    *prep,
                    self._w_dense,
                    self._w1_panels,
                    self._b_first,
                    self._tables_flat,
                    self._table_offset,
                    self._w_flat,
                    self._w_offset,
                    self._wp_flat,
                    self._wp_offset,
                    self._b_flat,
                    self._b_offset,
                    self._dims,
                    out,
                )
            return out
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-D feature matrix. Got shape {X.shape} instead.")
        out = np.empty(X.shape[0], dtype=np.float64)
        # Blocks of rows keep the intermediate activations in cache (a whole
        # 65536-row replay chunk's would not fit). Every row's products sum
        # in the same order whatever the block, so results do not depend on it.
        for lo in range(0, max(X.shape[0], 1), _BLAS_BLOCK_ROWS):
            out[lo : lo + _BLAS_BLOCK_ROWS] = self._forward_blas(X[lo : lo + _BLAS_BLOCK_ROWS])
        return out

    def _forward_blas(self, X: np.ndarray) -> np.ndarray:
        # float32 inputs held as float64: the products below run in float64
        # without a separate conversion pass over the matrix.
        dense, cats = self._prepare_arrays(X, np.float64)
        h = dense @ self._w_dense
        h += self._b_first
        for c, table in enumerate(self._tables):
            h += table[cats[:, c]]
        for w, b in self._layers:
            np.maximum(h, 0.0, out=h)
            h = h @ w
            h += b
        return h[:, 0]


def _batched(net: _Net, dense: torch.Tensor, cats: torch.Tensor, size: int = 65_536) -> np.ndarray:
    out = [net(dense[i : i + size], cats[i : i + size]) for i in range(0, len(dense), size)]
    if not out:
        return np.zeros(0, dtype=np.float64)
    return torch.cat(out).detach().numpy().astype(np.float64)
