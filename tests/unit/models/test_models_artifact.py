"""Artifacts: exact round trip, no pickle, clear errors when corrupted or mismatched."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from models_testkit import data, fit, fitted

from riskflow.errors import ArtifactError
from riskflow.models import load_model, read_manifest, save_model
from riskflow.models._artifact import _sha256


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    save_model(fitted(), tmp_path / "model", catalogue_hash="cat-v1", metadata={"note": "test"})
    return tmp_path / "model"


def _rewrite_checksum(path: Path, name: str) -> None:
    mf = json.loads((path / "manifest.json").read_text())
    mf["files"][name] = _sha256(path / name)
    (path / "manifest.json").write_text(json.dumps(mf))


def test_round_trip_is_exact(model_dir: Path) -> None:
    m = fitted()
    again = load_model(model_dir, expected_catalogue_hash="cat-v1")
    X = data().X[:700]
    np.testing.assert_array_equal(again.predict_proba(X), m.predict_proba(X))
    assert again.version == read_manifest(model_dir)["version"]
    assert again.feature_names_ == m.feature_names_ and again.descriptions_ == m.descriptions_
    assert again.reason_codes(X, [0, 1]) == m.reason_codes(X, [0, 1])
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert meta["note"] == "test" and "lightgbm" in meta["libraries"]
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(
        [
            "manifest.json",
            "features.json",
            "ensemble.json",
            "lightgbm.txt",
            "mlp.pt",
            "metadata.json",
        ]
    )


def test_same_training_same_content_hash(tmp_path: Path) -> None:
    v1 = save_model(fitted(), tmp_path / "a")
    v2 = save_model(fit(0), tmp_path / "b")
    assert v1.split("-")[1] == v2.split("-")[1]
    v3 = save_model(fit(1), tmp_path / "c")
    assert v3.split("-")[1] != v1.split("-")[1]


def test_other_catalogue_is_refused_saying_why(model_dir: Path) -> None:
    names = list(fitted().feature_names_)
    with pytest.raises(
        ArtifactError, match="trained on feature catalogue 'cat-v1'.*'cat-v2'"
    ) as exc:
        load_model(
            model_dir,
            expected_catalogue_hash="cat-v2",
            expected_feature_names=names[:-1] + ["velocity_new"],
        )
    assert "new in the engine: ['velocity_new']" in str(exc.value)
    assert "Retrain" in str(exc.value)


@pytest.mark.parametrize(
    "name", ["lightgbm.txt", "mlp.pt", "ensemble.json", "features.json", "metadata.json"]
)
def test_corrupted_file_fails_its_checksum(model_dir: Path, name: str) -> None:
    f = model_dir / name
    data_ = f.read_bytes()
    f.write_bytes(data_[: len(data_) // 2])
    with pytest.raises(ArtifactError, match=f"corrupted: {name} does not match the checksum"):
        load_model(model_dir)


def test_missing_pieces(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        load_model(tmp_path / "empty")
    (model_dir / "mlp.pt").unlink()
    with pytest.raises(ArtifactError, match="incomplete: mlp.pt is missing"):
        load_model(model_dir)


def test_bad_manifest(model_dir: Path) -> None:
    mf = model_dir / "manifest.json"
    text = mf.read_text()
    mf.write_text(text[:40])
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_model(model_dir)
    obj = json.loads(text)
    obj["format_version"] = 99
    mf.write_text(json.dumps(obj))
    with pytest.raises(ArtifactError, match="format version 99"):
        load_model(model_dir)


class _Evil:
    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


def test_pickled_objects_are_never_loaded(model_dir: Path) -> None:
    # A crafted mlp.pt with a consistent checksum: weights_only refuses it.
    torch.save({"x": _Evil()}, model_dir / "mlp.pt", pickle_protocol=pickle.HIGHEST_PROTOCOL)
    _rewrite_checksum(model_dir, "mlp.pt")
    with pytest.raises(ArtifactError, match="tensors-only"):
        load_model(model_dir)


def test_consistent_but_mismatched_files_are_refused(model_dir: Path) -> None:
    # An MLP state from an architecture that does not match ensemble.json.
    state = torch.load(model_dir / "mlp.pt", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("mlp.0")}
    torch.save(state, model_dir / "mlp.pt")
    _rewrite_checksum(model_dir, "mlp.pt")
    with pytest.raises(ArtifactError, match="do not fit its recorded architecture"):
        load_model(model_dir)


def test_garbage_lightgbm_text(model_dir: Path) -> None:
    (model_dir / "lightgbm.txt").write_text("tree\nversion=v4\nnot a model\n")
    _rewrite_checksum(model_dir, "lightgbm.txt")
    with pytest.raises(ArtifactError, match="LightGBM model text could not be parsed"):
        load_model(model_dir)


def test_unfitted_model_cannot_be_saved(tmp_path: Path) -> None:
    from riskflow.models import Ensemble

    with pytest.raises(ValueError, match="fitted"):
        save_model(Ensemble(), tmp_path)
