from __future__ import annotations

import numpy as np
import pytest
from policies_testkit import COST, reference, stream

pytest.importorskip("gymnasium")
from riskflow.policies.backtest import HOUR_MS, IntervalReplayer, ScoredStream  # noqa: E402
from riskflow.policies.rl.env import ThresholdEnv  # noqa: E402


def test_replayer_releases_each_label_in_its_interval_only():
    s = stream(hours=48, seed=1)
    rep = IntervalReplayer(s, HOUR_MS, COST)
    static = reference(s).static_policy()
    seen = 0
    for k in range(len(rep)):
        w, _ = rep.step(k, static)
        lo, hi = rep.ends[k] - HOUR_MS, rep.ends[k]
        # exactly the reported labels whose label_time falls in (lo, hi]
        due = np.isfinite(s.label_time) & (s.label_time > lo) & (s.label_time <= hi) & (s.ts < hi)
        assert w.released_label.size == due.sum()
        np.testing.assert_array_equal(np.sort(w.released_amount), np.sort(s.amount[due]))
        seen += w.released_label.size
    assert seen > 0


def _with_future_labels_flipped(s: ScoredStream, cut: float) -> ScoredStream:
    label = s.label.copy()
    later = np.isfinite(s.label_time) & (s.label_time > cut)
    label[later] = np.where(label[later] == 1, 0, 1)
    return ScoredStream(s.ts, s.score, s.amount, s.is_fraud, s.label_time, label)


@pytest.mark.parametrize("reward", ["decision", "arrival"])
def test_env_reveals_no_label_before_its_time(reward):
    s = stream(hours=60, seed=3, delay_ms=3 * HOUR_MS)
    cut = float(s.ts[0] // HOUR_MS * HOUR_MS + 40 * HOUR_MS)
    envs = [
        ThresholdEnv(
            [x],
            reference(s),
            COST,
            episode_intervals=None,
            warmup_intervals=4,
            reward=reward,
            seed=0,
        )
        for x in (s, _with_future_labels_flipped(s, cut))
    ]
    obs = [e.reset(options={"stream": 0, "start": 0})[0] for e in envs]
    np.testing.assert_array_equal(obs[0], obs[1])
    rng = np.random.default_rng(0)
    differed_after = False
    while True:
        a = rng.uniform(-1, 1, 2).astype(np.float32)
        t_end = envs[0]._rep.ends[envs[0]._k]
        out = [e.step(a) for e in envs]
        if t_end <= cut:
            np.testing.assert_array_equal(out[0][0], out[1][0])
        else:
            differed_after |= not np.array_equal(out[0][0], out[1][0])
        if out[0][2]:
            break
    assert differed_after  # the flipped labels do reach the agent once they are due


def test_env_follows_the_gymnasium_api():
    from gymnasium.utils.env_checker import check_env

    s = stream(hours=40, seed=2)
    env = ThresholdEnv([s], reference(s), COST, episode_intervals=12, warmup_intervals=4, seed=1)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    total = 0.0
    for _ in range(12):
        obs, r, done, trunc, info = env.step(np.zeros(2, np.float32))
        total += r
    assert done
    # action 0 = static thresholds: the reward (static cost - agent cost) is 0
    assert total == pytest.approx(0.0, abs=1e-9)


def test_reward_amount_shaping_keeps_the_mean_fraud_amount():
    s = stream(hours=40, seed=2)
    s.amount[np.flatnonzero(s.is_fraud)[:3]] = 1e6  # a few lottery frauds
    env = ThresholdEnv(
        [s],
        reference(s),
        COST,
        episode_intervals=12,
        warmup_intervals=4,
        reward_amount_cap=1_000.0,
        seed=0,
    )
    shaped = env._replayers[0].cost_amount
    f = s.is_fraud == 1
    assert shaped[f].max() < 1e6
    assert shaped[f].mean() == pytest.approx(s.amount[f].mean())
    np.testing.assert_array_equal(shaped[~f], s.amount[~f])
    assert env._replayers[0].stream.amount[f].max() == 1e6  # what the agent observes is untouched


def test_residual_env_action_zero_follows_the_controller_fed_every_window():
    from riskflow.policies import Guardrails
    from riskflow.policies.controller import RateController

    s = stream(hours=40, seed=2)
    ref = reference(s)
    g = Guardrails(max_step=20.0, max_decline_rate=1.0)

    def make() -> RateController:
        return RateController(
            ref.static_policy(), None, window=2, target_reviews_per_interval=3.0, ceiling=True
        )

    env = ThresholdEnv(
        [s], ref, COST, g, episode_intervals=12, warmup_intervals=4, baseline=make, seed=0
    )
    env.reset(options={"stream": 0, "start": 0})
    rep, twin = env._replayers[0], make()
    for k in range(4):
        want = twin.propose(s.score[rep.rows(k)])
    moved = 0
    for k in range(4, 16):
        _, _, done, _, info = env.step(np.zeros(2, np.float32))
        assert (info["t_review"], info["t_decline"]) == pytest.approx(
            (want.t_review, want.t_decline)
        )
        moved += want.t_review != ref.static_t_review
        want = twin.propose(s.score[rep.rows(k)])
    assert done and moved > 0  # the ceiling did bind: the baseline is not just the static policy


def test_bootstrap_ratio_is_paired_and_narrows_with_more_days():
    from riskflow.policies.rl.experiment import bootstrap_ratio

    rng = np.random.default_rng(3)
    static = [rng.lognormal(5, 1, 28) for _ in range(5)]
    # a policy 20% cheaper every day: pairing makes the interval a point
    assert bootstrap_ratio([0.8 * d for d in static], static) == pytest.approx((0.8, 0.8))
    # noisy daily ratios around 0.85: the interval holds the ratio and narrows with more days
    noisy = [d * rng.uniform(0.6, 1.1, d.size) for d in static]
    lo, hi = bootstrap_ratio(noisy, static)
    point = sum(map(np.sum, noisy)) / sum(map(np.sum, static))
    assert lo < point < hi
    many = [rng.lognormal(5, 1, 28) for _ in range(80)]
    lo2, hi2 = bootstrap_ratio([d * rng.uniform(0.6, 1.1, d.size) for d in many], many)
    assert hi2 - lo2 < (hi - lo) / 2
    with pytest.raises(ValueError, match="same non-empty days"):
        bootstrap_ratio([np.ones(3)], [np.ones(4)])


def test_eval_seeds_keep_the_first_five_and_never_collide():
    from riskflow.policies.rl.experiment import SCENARIOS, eval_seed

    assert eval_seed(0, 3, "new_scenario") == 1000 + 30 + list(SCENARIOS).index("new_scenario")
    seeds = [eval_seed(s, j, k) for s in range(4) for j in range(40) for k in SCENARIOS]
    assert len(set(seeds)) == len(seeds)
    # never a training (100 + 50 s + i), selection (200 + 50 s + i) or validation (1 + s) seed
    assert min(seeds) >= 1000
