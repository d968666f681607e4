"""Model artifacts: a versioned directory, written and read without pickle.

Layout of ``MODEL_DIR`` (all text except the torch tensors)::

    manifest.json     format, version, feature hashes, SHA-256 of every file below
    features.json     the feature list: name, kind, description (reason codes)
    ensemble.json     member order, blend weights, calibration curve, MLP layout
    lightgbm.txt      LightGBM's own text model
    mlp.pt            torch state_dict (tensors only; loaded with weights_only=True)
    metadata.json     training windows, metrics, library versions, data fingerprint

``manifest.json`` is written last and atomically (write + rename), so a reader
either sees the previous complete model or the new one; a file changed after
the manifest fails its checksum. The version is ``<UTC time>-<content hash>``:
two trainings with the same data and seed share the hash part.

A model remembers the feature engine catalogue hash it was trained with;
:func:`load_model` refuses it under another catalogue, since column ``j``
would then mean another feature.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from riskflow.errors import ArtifactError
from riskflow.models._calibration import Blender, Calibrator
from riskflow.models._ensemble import MEMBERS, Ensemble
from riskflow.models._lgbm import LightGBMMember
from riskflow.models._mlp import MLPMember

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "save_model",
    "load_model",
    "read_manifest",
    "feature_list_hash",
    "library_versions",
]

FORMAT = "riskflow-model"
#: Bump when the directory layout or a file's meaning changes.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_FILES = ("features.json", "ensemble.json", "lightgbm.txt", "mlp.pt", "metadata.json")
_CONTENT = ("features.json", "ensemble.json", "lightgbm.txt", "mlp.pt")


def feature_list_hash(names: Any, kinds: Any) -> str:
    """SHA-256 (hex, 16 chars) of the ordered feature names and kinds."""
    text = "\n".join(f"{n}\t{k}" for n, k in zip(names, kinds, strict=True))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def library_versions() -> dict[str, str]:
    """Versions of what a model was trained with (recorded in metadata.json)."""
    import lightgbm
    import sklearn
    import torch

    from riskflow import __version__

    return {
        "riskflow": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "lightgbm": lightgbm.__version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def _atomic_write_json(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_safe(obj: Any) -> Any:
    """Replace NaN / inf (not JSON) by None, recursively; numpy scalars by Python ones."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def save_model(
    model: Ensemble,
    path: str | Path,
    *,
    catalogue_hash: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Write ``model`` to the directory ``path`` (created if needed); return its version.

    ``catalogue_hash`` is the feature engine's ``catalogue_hash`` (default:
    the model's own, or the feature-list hash when it has none).
    """
    import torch

    if not hasattr(model, "members_"):
        raise ValueError("Only a fitted Ensemble can be saved; call fit() first.")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    flh = feature_list_hash(model.feature_names_, model.kinds_)
    cat_hash = catalogue_hash or model.catalogue_hash or flh
    _write_json(
        out / "features.json",
        [
            {"name": n, "kind": k, "description": d}
            for n, k, d in zip(model.feature_names_, model.kinds_, model.descriptions_, strict=True)
        ],
    )
    ens: dict[str, Any] = {
        "members": list(model.members_),
        "blend": model.blender_.to_dict(),
        "calibration": model.calibrator_.to_dict(),
        "params": {
            "blend": model.blend,
            "calibration": model.calibration,
            "seed": model.seed,
            "lgbm_params": model.lgbm_params,
            "mlp_params": model.mlp_params,
        },
    }
    if "lightgbm" in model.members_:
        lgbm: LightGBMMember = model.members_["lightgbm"]
        (out / "lightgbm.txt").write_text(lgbm.model_text_)
        ens["lightgbm"] = {
            "best_iteration": getattr(lgbm, "best_iteration_", None),
            "scale_pos_weight": getattr(lgbm, "scale_pos_weight_", None),
        }
    else:
        (out / "lightgbm.txt").write_text("")
    if "mlp" in model.members_:
        mlp: MLPMember = model.members_["mlp"]
        torch.save({k: v.detach().clone() for k, v in mlp.state_dict().items()}, out / "mlp.pt")
        ens["mlp"] = {"config": mlp.config(), "best_epoch": getattr(mlp, "best_epoch_", None)}
    else:
        torch.save({}, out / "mlp.pt")
    _write_json(out / "ensemble.json", _json_safe(ens))
    created = datetime.now(UTC)
    content = hashlib.sha256()
    for name in _CONTENT:
        content.update(_sha256(out / name).encode())
    version = f"{created:%Y%m%dT%H%M%SZ}-{content.hexdigest()[:12]}"
    meta = {
        "version": version,
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "libraries": library_versions(),
        **(metadata or {}),
    }
    _write_json(out / "metadata.json", _json_safe(meta))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": version,
        "created_at": meta["created_at"],
        "catalogue_hash": cat_hash,
        "feature_list_hash": flh,
        "n_features": len(model.feature_names_),
        "members": list(model.members_),
        "files": {name: _sha256(out / name) for name in _FILES},
    }
    _atomic_write_json(out / MANIFEST, manifest)
    model.version = version
    model.catalogue_hash = cat_hash
    return version


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of the model directory ``path`` (checked for format, not checksums)."""
    p = Path(path)
    mf = p / MANIFEST
    if not p.is_dir():
        raise ArtifactError(
            f"Model directory {str(p)!r} does not exist. Train one with "
            "`riskflow train --data DATA --out DIR` or set model.path in riskflow.toml."
        )
    if not mf.is_file():
        raise ArtifactError(
            f"{str(p)!r} is not a riskflow model: it has no {MANIFEST}. Point to a directory "
            "written by `riskflow train`."
        )
    try:
        manifest = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(
            f"{str(mf)!r} is corrupted (not valid JSON: {exc}). Retrain or restore the model."
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(
            f"{str(mf)!r} is not a riskflow model manifest (format "
            f"{manifest.get('format') if isinstance(manifest, dict) else None!r}, "
            f"expected {FORMAT!r})."
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"Model {str(p)!r} has artifact format version {manifest.get('format_version')!r}; "
            f"this riskflow reads version {FORMAT_VERSION}. Retrain it with this riskflow."
        )
    return manifest


def load_model(
    path: str | Path,
    *,
    expected_catalogue_hash: str | None = None,
    expected_feature_names: Any = None,
    num_threads: int | None = None,
) -> Ensemble:
    """Read a model directory written by :func:`save_model`.

    Checks, in order: the manifest, every file's SHA-256, the feature
    catalogue (``expected_catalogue_hash``, e.g. ``engine.catalogue_hash``;
    ``expected_feature_names`` sharpens the message with what differs), then
    parses each member. Anything wrong raises :class:`ArtifactError` saying
    what and how to fix it. ``num_threads`` (default: what the model was
    trained with) is used by LightGBM's own predict; torch threads are
    process-wide and left to the caller (:class:`~riskflow.models.Scorer`
    pins them).
    """
    import torch

    p = Path(path)
    manifest = read_manifest(p)
    files = manifest.get("files") or {}
    for name in _FILES:
        f = p / name
        if not f.is_file():
            raise ArtifactError(
                f"Model {str(p)!r} is incomplete: {name} is missing. Retrain or restore the model."
            )
        if files.get(name) != _sha256(f):
            raise ArtifactError(
                f"Model {str(p)!r} is corrupted: {name} does not match the checksum in "
                f"{MANIFEST} (file changed or truncated after training). Retrain or restore "
                "the model directory."
            )
    if (
        expected_catalogue_hash is not None
        and manifest.get("catalogue_hash") != expected_catalogue_hash
    ):
        detail = ""
        try:
            trained = [f["name"] for f in json.loads((p / "features.json").read_text())]
            if expected_feature_names is not None:
                exp = list(expected_feature_names)
                missing = [n for n in trained if n not in exp]
                extra = [n for n in exp if n not in trained]
                detail = (
                    f" The model expects {len(trained)} features, the engine computes {len(exp)}"
                    + (f"; unknown to the engine: {missing[:5]}" if missing else "")
                    + (f"; new in the engine: {extra[:5]}" if extra else "")
                    + (
                        "; same names, other order or definitions"
                        if not missing and not extra
                        else ""
                    )
                    + "."
                )
        except (OSError, ValueError, KeyError, TypeError):
            pass
        raise ArtifactError(
            f"Model {str(p)!r} (version {manifest.get('version')}) was trained on feature catalogue "
            f"{manifest.get('catalogue_hash')!r}, but this feature engine's catalogue is "
            f"{expected_catalogue_hash!r}, so its columns would mean other features.{detail} "
            "Retrain the model with this riskflow version (`riskflow train`), or run the "
            "riskflow version the model was trained with."
        )
    try:
        features = json.loads((p / "features.json").read_text())
        ens = json.loads((p / "ensemble.json").read_text())
        names = tuple(str(f["name"]) for f in features)
        kinds = tuple(str(f["kind"]) for f in features)
        descriptions = tuple(str(f["description"]) for f in features)
        member_names = list(ens["members"])
        if not member_names or any(m not in MEMBERS for m in member_names):
            raise ValueError(f"unknown members {member_names!r}")
        params = ens.get("params", {})
        model = Ensemble(
            members=member_names,
            blend=params.get("blend", "weighted"),
            calibration=params.get("calibration", "auto"),
            lgbm_params=params.get("lgbm_params"),
            mlp_params=params.get("mlp_params"),
            seed=int(params.get("seed", 0)),
            num_threads=int(num_threads or 1),
        )
        blender = Blender.from_dict(ens["blend"])
        calibrator = Calibrator.from_dict(ens["calibration"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(
            f"Model {str(p)!r} has an unreadable feature list or ensemble description ({exc}). "
            "Retrain or restore the model."
        ) from exc
    if feature_list_hash(names, kinds) != manifest.get("feature_list_hash"):
        raise ArtifactError(
            f"Model {str(p)!r}: features.json does not match the manifest's feature hash. "
            "Retrain or restore the model."
        )
    members: dict[str, Any] = {}
    for name in member_names:
        if name == "lightgbm":
            members[name] = LightGBMMember.from_model_string(
                (p / "lightgbm.txt").read_text(), num_threads=int(num_threads or 1)
            )
        else:
            try:
                state = torch.load(p / "mlp.pt", map_location="cpu", weights_only=True)
            except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ...
                raise ArtifactError(
                    f"Model {str(p)!r}: mlp.pt is not a tensors-only torch state_dict ({exc}). "
                    "riskflow never unpickles arbitrary objects; retrain the model."
                ) from exc
            try:
                config = ens["mlp"]["config"]
            except (KeyError, TypeError) as exc:
                raise ArtifactError(
                    f"Model {str(p)!r}: ensemble.json lacks the MLP layout."
                ) from exc
            members[name] = MLPMember.from_state(config, state)
        if members[name].n_features_in_ != len(names):
            raise ArtifactError(
                f"Model {str(p)!r}: the {name} member expects {members[name].n_features_in_} "
                f"features but features.json lists {len(names)}. Retrain the model."
            )
    if blender.weights_.size != len(members):
        raise ArtifactError(
            f"Model {str(p)!r}: the blend has {blender.weights_.size} weights for "
            f"{len(members)} members. Retrain the model."
        )
    model.members_ = members
    model.blender_ = blender
    model.calibrator_ = calibrator
    model.feature_names_ = names
    model.kinds_ = kinds
    model.descriptions_ = descriptions
    model.n_features_in_ = len(names)
    model.version = str(manifest["version"])
    model.catalogue_hash = manifest.get("catalogue_hash")
    return model
