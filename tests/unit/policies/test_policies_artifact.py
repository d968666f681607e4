from __future__ import annotations

import json

import numpy as np
import pytest
from policies_testkit import COST, reference, stream

from riskflow.policies import (
    Guardrails,
    NumpyActor,
    PolicyArtifact,
    PolicyArtifactError,
    PolicyError,
    ThresholdPolicy,
    decode_policy_update,
    encode_policy_update,
    load_policy,
    save_policy,
)
from riskflow.policies.backtest import run_policy


def _actor(seed=0):
    rng = np.random.default_rng(seed)
    w = [rng.normal(0, 0.5, (8, 14)), rng.normal(0, 0.5, (8, 8)), rng.normal(0, 0.5, (2, 8))]
    b = [rng.normal(0, 0.1, 8), rng.normal(0, 0.1, 8), rng.normal(0, 0.1, 2)]
    return NumpyActor(w, b, "tanh", "clip")


def test_policy_update_codec_roundtrip_and_errors():
    p = ThresholdPolicy(0.1, 0.8, version="rl-1", source="rl", effective_ms=1767225600000)
    raw = encode_policy_update(p)
    assert json.loads(raw)["t_decline"] == 0.8
    assert decode_policy_update(raw) == p
    with pytest.raises(PolicyError):
        decode_policy_update(b"{not json")
    with pytest.raises(PolicyError, match="must not exceed"):
        decode_policy_update(b'{"t_review": 0.9, "t_decline": 0.1}')
    with pytest.raises(PolicyError):
        decode_policy_update(b"[1, 2]")


def test_saved_policy_reloads_and_acts_identically(tmp_path):
    s = stream(hours=72, seed=7, spike=(30, 50, 4.0))
    ref = reference(s)
    g = Guardrails(max_step=0.6)
    art = PolicyArtifact(
        "rl", "rl-test", ref.static_policy(), ref, COST, g, _actor(), 2.0, {"x": 1}
    )
    save_policy(tmp_path / "p", art)
    back = load_policy(tmp_path / "p")
    assert (back.version, back.guardrails, back.cost_model, back.reference) == (
        "rl-test",
        g,
        COST,
        ref,
    )
    obs = np.random.default_rng(1).normal(size=(50, 14))
    np.testing.assert_array_equal(art.actor(obs), back.actor(obs))
    r1 = run_policy(s, art.make_agent(), COST, audit=g)
    r2 = run_policy(s, back.make_agent(), COST, audit=g)
    np.testing.assert_array_equal(r1.decisions, r2.decisions)
    np.testing.assert_array_equal(
        r1.thresholds[["t_review", "t_decline"]].to_numpy(),
        r2.thresholds[["t_review", "t_decline"]].to_numpy(),
    )
    assert r1.thresholds["t_review"].nunique() > 1  # the agent did move the thresholds


def test_residual_policy_reloads_and_acts_identically(tmp_path):
    s = stream(hours=72, seed=7, spike=(30, 50, 4.0))
    ref = reference(s)
    g = Guardrails(max_step=0.6)
    art = PolicyArtifact(
        "rl", "rl-res", ref.static_policy(), ref, COST, g, _actor(), 2.0, base="controller"
    )
    save_policy(tmp_path / "p", art)
    back = load_policy(tmp_path / "p")
    assert back.base == "controller"
    r1 = run_policy(s, art.make_agent(), COST, audit=g)
    r2 = run_policy(s, back.make_agent(), COST, audit=g)
    np.testing.assert_array_equal(r1.decisions, r2.decisions)
    np.testing.assert_array_equal(
        r1.thresholds[["t_review", "t_decline"]].to_numpy(),
        r2.thresholds[["t_review", "t_decline"]].to_numpy(),
    )
    # the same actor on the static base acts differently: the base is part of the policy
    plain = run_policy(
        s,
        PolicyArtifact(
            "rl", "rl-res", ref.static_policy(), ref, COST, g, _actor(), 2.0
        ).make_agent(),
        COST,
        audit=g,
    )
    assert not np.array_equal(
        plain.thresholds["t_review"].to_numpy(), r1.thresholds["t_review"].to_numpy()
    )
    with pytest.raises(PolicyArtifactError, match="base must be one of"):
        PolicyArtifact("rl", "v", ref.static_policy(), ref, COST, g, _actor(), base="oracle")


def test_corrupted_or_missing_artifact_is_refused(tmp_path):
    s = stream(hours=10)
    ref = reference(s)
    save_policy(
        tmp_path, PolicyArtifact("rl", "v", ref.static_policy(), ref, COST, Guardrails(), _actor())
    )
    raw = bytearray((tmp_path / "actor.npz").read_bytes())
    raw[-40] ^= 0xFF
    (tmp_path / "actor.npz").write_bytes(bytes(raw))
    with pytest.raises(PolicyArtifactError, match="SHA-256"):
        load_policy(tmp_path)
    with pytest.raises(PolicyArtifactError, match="policy train"):
        load_policy(tmp_path / "nowhere")


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_extracted_actor_matches_sb3(algo):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO, SAC

    from riskflow.policies.rl.env import ThresholdEnv
    from riskflow.policies.rl.train import extract_actor

    s = stream(hours=40, seed=2)
    env = ThresholdEnv([s], reference(s), COST, episode_intervals=16, warmup_intervals=4, seed=0)
    if algo == "ppo":
        model = PPO(
            "MlpPolicy",
            env,
            n_steps=64,
            batch_size=32,
            n_epochs=1,
            seed=0,
            device="cpu",
            policy_kwargs={"net_arch": [16, 16]},
        )
    else:
        model = SAC(
            "MlpPolicy",
            env,
            learning_starts=16,
            batch_size=16,
            seed=0,
            device="cpu",
            policy_kwargs={"net_arch": [16, 16]},
        )
    model.learn(64)
    actor = extract_actor(model)
    obs = np.random.default_rng(0).uniform(-3, 3, (40, 14)).astype(np.float32)
    want, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(actor(obs), want, atol=1e-5)
