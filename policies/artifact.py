"""Policy artifacts on disk and policy updates on the wire.

An artifact is a directory: ``policy.json`` (format version, kind, static
thresholds, reference facts, cost model, guardrails, actor layout, SHA-256 of
the weights) and, for an RL policy, ``actor.npz`` (the actor MLP's weights as
plain arrays, read with ``allow_pickle=False``). Nothing is unpickled, and
stable-baselines3 is never needed to serve it.

Policy updates for the compacted policy topic are small JSON objects
(:func:`encode_policy_update` / :func:`decode_policy_update`).

>>> p = ThresholdPolicy(0.4, 0.95, version="rl-7", source="rl", effective_ms=1767225600000)
>>> decode_policy_update(encode_policy_update(p)) == p
True
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from riskflow.policies.agent import (
    ActorProposer,
    ControllerProposer,
    NumpyActor,
    OnlineAgent,
    ResidualProposer,
    StaticProposer,
)
from riskflow.policies.controller import RateController
from riskflow.policies.cost import HOUR_MS, CostModel
from riskflow.policies.decide import ThresholdPolicy
from riskflow.policies.exceptions import PolicyArtifactError, PolicyError
from riskflow.policies.guardrails import Guardrails
from riskflow.policies.window import OBS_NAMES, Reference

__all__ = [
    "FORMAT_VERSION",
    "PolicyArtifact",
    "save_policy",
    "load_policy",
    "encode_policy_update",
    "decode_policy_update",
    "POLICY_KEY",
    "BASES",
    "capacity_controller",
]

FORMAT_VERSION = 1
#: Key of policy updates on the compacted topic: only the latest one matters.
POLICY_KEY = b"thresholds"
#: Busiest hour's volume / mean hourly volume of the simulated day (1.8 on the
#: validation stream); the controller's review ceiling scales with it.
PEAK_TO_MEAN = 1.9
#: What an RL actor's action is an offset from: the static thresholds, or the
#: review-capacity controller of :func:`capacity_controller` (a residual agent).
BASES = ("static", "controller")


def capacity_controller(
    static: ThresholdPolicy, reference: Reference, cost_model: CostModel, interval_ms: int
) -> RateController:
    """The review-ceiling controller (see :meth:`PolicyArtifact.make_controller`)."""
    target = (
        PEAK_TO_MEAN
        * reference.review_rate
        * reference.tx_per_interval
        * interval_ms
        / reference.interval_ms
    )
    cap = cost_model.review_capacity_per_hour
    if math.isfinite(cap):
        target = max(target, 0.9 * cap * interval_ms / HOUR_MS)
    return RateController(
        static, None, None, window=2, target_reviews_per_interval=target, ceiling=True
    )


_UPDATE_FIELDS = ("t_review", "t_decline", "version", "source", "effective_ms")


def encode_policy_update(policy: ThresholdPolicy) -> bytes:
    """The JSON value of a policy-topic message (key: :data:`POLICY_KEY`)."""
    return orjson.dumps({"type": "thresholds", **policy.to_dict()})


def decode_policy_update(value: bytes | str) -> ThresholdPolicy:
    """Parse and validate a policy-topic value into a :class:`ThresholdPolicy`."""
    try:
        d = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise PolicyError(
            f"A policy update must be a JSON object; got undecodable bytes ({exc})."
        ) from None
    if not isinstance(d, dict):
        raise PolicyError(f"A policy update must be a JSON object. Got {d!r} instead.")
    return ThresholdPolicy.from_dict({k: d[k] for k in _UPDATE_FIELDS if k in d})


@dataclass
class PolicyArtifact:
    """A loaded policy: what kind, its thresholds and everything to run it online."""

    kind: str  # "static" | "controller" | "rl"
    version: str
    static: ThresholdPolicy
    reference: Reference | None
    cost_model: CostModel
    guardrails: Guardrails
    actor: NumpyActor | None = None
    max_offset: float = 2.0
    meta: dict[str, Any] | None = None
    #: What the actor's action offsets (see :data:`BASES`).
    base: str = "static"

    def __post_init__(self) -> None:
        if self.base not in BASES:
            raise PolicyArtifactError(
                f"A policy's base must be one of {BASES}. Got {self.base!r} instead."
            )

    def make_controller(self, interval_ms: int) -> OnlineAgent:
        """The target-rate controller baseline built on this artifact's facts.

        It caps review volume per interval: ``t_review`` rises above the static
        one when the recent scores would send more reviews than the ceiling,
        and never drops below it; ``t_decline`` stays static. The ceiling is
        the static policy's validation review volume at the daily peak (about
        :data:`PEAK_TO_MEAN` x its mean) or 90% of review capacity, whichever
        is larger: on validation the static policy overflows at the peak on
        purpose (those reviews are worth the penalty), so holding it below
        capacity costs more than it saves. Guardrails apply, no fallback.
        (The earlier set point, reviews held *at* the mean volume, reviewed
        junk at night and cost 1.47x static on the stationary stream.)
        """
        if self.reference is None:
            raise PolicyArtifactError(
                f"Policy {self.version!r} has no reference facts; it cannot run online."
            )
        ref = self.reference
        ctrl = capacity_controller(self.static, ref, self.cost_model, interval_ms)
        return OnlineAgent(
            ControllerProposer(ctrl),
            ref,
            self.cost_model,
            self.guardrails,
            version="controller",
            fallback=False,
        )

    def make_agent(self, *, shadow: bool = False, fallback: bool = True) -> OnlineAgent:
        """A fresh :class:`OnlineAgent` acting with this policy."""
        if self.reference is None:
            raise PolicyArtifactError(
                f"Policy {self.version!r} has no reference facts; it cannot run online."
            )
        proposer: Any
        if self.actor is not None and self.base == "controller":
            ctrl = capacity_controller(
                self.static, self.reference, self.cost_model, self.reference.interval_ms
            )
            proposer = ResidualProposer(
                self.actor, self.reference, ctrl, self.max_offset, self.version
            )
        elif self.actor is not None:
            proposer = ActorProposer(self.actor, self.reference, self.max_offset, self.version)
        else:
            proposer = StaticProposer(self.static)
        return OnlineAgent(
            proposer,
            self.reference,
            self.cost_model,
            self.guardrails,
            shadow=shadow,
            fallback=fallback,
            version=self.version,
            max_offset=self.max_offset,
        )


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def new_version(kind: str) -> str:
    """``rl-20260128T101500Z``: kind and UTC creation time."""
    return f"{kind}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"


def save_policy(path: str | Path, artifact: PolicyArtifact) -> Path:
    """Write ``artifact`` to directory ``path`` (created); returns the path."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": artifact.kind,
        "version": artifact.version,
        "static": artifact.static.to_dict(),
        "reference": None if artifact.reference is None else artifact.reference.to_dict(),
        "cost_model": artifact.cost_model.to_dict(),
        "guardrails": artifact.guardrails.to_dict(),
        "max_offset": artifact.max_offset,
        "base": artifact.base,
        "observation": list(OBS_NAMES),
        "meta": artifact.meta or {},
        "actor": None,
    }
    if artifact.actor is not None:
        a = artifact.actor
        arrays = {f"w{i}": w for i, w in enumerate(a.weights)} | {
            f"b{i}": b for i, b in enumerate(a.biases)
        }
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        data = buf.getvalue()
        (out / "actor.npz").write_bytes(data)
        doc["actor"] = {
            "file": "actor.npz",
            "sha256": _sha(data),
            "layers": len(a.weights),
            "activation": a.activation,
            "squash": a.squash,
        }
    (out / "policy.json").write_text(json.dumps(doc, indent=2))
    return out


def load_policy(path: str | Path) -> PolicyArtifact:
    """Read an artifact written by :func:`save_policy` (weights checked by SHA-256)."""
    p = Path(path)
    f = p / "policy.json" if p.is_dir() else p
    if not f.is_file():
        raise PolicyArtifactError(
            f"No policy artifact at {str(p)!r} (policy.json missing); run `riskflow policy train`."
        )
    try:
        doc = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise PolicyArtifactError(
            f"{str(f)!r} is not valid JSON ({exc}); the artifact is corrupted."
        ) from None
    if doc.get("format_version") != FORMAT_VERSION:
        raise PolicyArtifactError(
            f"Policy artifact {str(f)!r} has format_version {doc.get('format_version')!r}; this riskflow reads {FORMAT_VERSION}."
        )
    actor = None
    if doc.get("actor"):
        spec = doc["actor"]
        wf = f.parent / spec["file"]
        if not wf.is_file():
            raise PolicyArtifactError(f"Actor weights {str(wf)!r} are missing from the artifact.")
        data = wf.read_bytes()
        if _sha(data) != spec["sha256"]:
            raise PolicyArtifactError(
                f"Actor weights {str(wf)!r} do not match their SHA-256 in policy.json; the artifact is corrupted."
            )
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            n = int(spec["layers"])
            actor = NumpyActor(
                [z[f"w{i}"] for i in range(n)],
                [z[f"b{i}"] for i in range(n)],
                spec["activation"],
                spec["squash"],
            )
        if list(doc.get("observation", [])) != list(OBS_NAMES):
            raise PolicyArtifactError(
                f"Policy {doc.get('version')!r} was trained on observation {doc.get('observation')} "
                f"but this riskflow builds {list(OBS_NAMES)}; retrain with `riskflow policy train`."
            )
    return PolicyArtifact(
        kind=str(doc["kind"]),
        version=str(doc["version"]),
        static=ThresholdPolicy.from_dict(doc["static"]),
        reference=None if doc.get("reference") is None else Reference.from_dict(doc["reference"]),
        cost_model=CostModel.from_dict(doc["cost_model"]),
        guardrails=Guardrails(**doc["guardrails"]),
        actor=actor,
        max_offset=float(doc.get("max_offset", 2.0)),
        meta=doc.get("meta") or {},
        base=str(doc.get("base", "static")),
    )
