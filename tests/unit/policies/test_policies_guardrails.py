from __future__ import annotations

import numpy as np
import pytest
from policies_testkit import COST, reference, stream

from riskflow.policies import (
    ActorProposer,
    FallbackMonitor,
    Guardrails,
    OnlineAgent,
    PolicyConfigError,
    ThresholdPolicy,
    check_violations,
)
from riskflow.policies.backtest import run_policy
from riskflow.policies.decide import logit

G = Guardrails(
    max_step=0.4,
    t_review_min=0.01,
    t_review_max=0.8,
    t_decline_min=0.3,
    t_decline_max=0.99,
    max_decline_rate=0.02,
)


class Adversary:
    """Always asks for the most extreme thresholds, flipping between both ends."""

    def __init__(self) -> None:
        self.i = 0

    def __call__(self, obs):
        self.i += 1
        sign = 1.0 if (self.i // 3) % 2 else -1.0
        return np.array([sign, -sign]) * 50.0  # far outside the action box on purpose


@pytest.mark.parametrize("max_offset", [2.0, 10.0])
def test_guardrails_hold_against_an_adversarial_agent(max_offset):
    s = stream(hours=96, seed=2, spike=(40, 60, 5.0))
    ref = reference(s)
    agent = OnlineAgent(
        ActorProposer(Adversary(), ref, max_offset),
        ref,
        COST,
        G,
        max_offset=max_offset,
        fallback=False,
    )
    r = run_policy(s, agent, COST, audit=G)
    assert r.violations == {}
    assert r.extra["guardrail_interventions"] > 10  # it did try
    thr = r.thresholds
    assert thr["t_review"].between(G.t_review_min, G.t_review_max).all()
    assert thr["t_decline"].between(G.t_decline_min, G.t_decline_max).all()
    steps = np.abs(np.diff(logit(thr[["t_review", "t_decline"]].to_numpy()), axis=0))
    assert steps.max() <= G.max_step + 1e-6
    assert (thr["t_review"] <= thr["t_decline"]).all()


def test_decline_rate_cap_raises_t_decline():
    rng = np.random.default_rng(0)
    recent = rng.random(5000)
    for headroom in (1.0, 0.8):
        g = Guardrails(
            max_step=100, t_decline_min=0.01, max_decline_rate=0.05, decline_rate_headroom=headroom
        )
        p, hits = g.apply(ThresholdPolicy(0.01, 0.02), ThresholdPolicy(0.01, 0.02), recent)
        assert "max_decline_rate" in hits
        assert np.mean(recent >= p.t_decline) <= 0.05 * headroom
        assert (
            np.mean(recent >= p.t_decline) > 0.05 * headroom - 0.01
        )  # not more conservative than needed


def test_check_violations_sees_each_kind():
    prev = ThresholdPolicy(0.1, 0.5)
    assert check_violations(G, prev, ThresholdPolicy(0.1, 0.5), 0.01) == []
    assert check_violations(G, prev, ThresholdPolicy(0.1, 0.98), 0.01) == ["max_step"]
    assert check_violations(G, None, ThresholdPolicy(0.001, 0.5), 0.01) == ["bounds"]
    assert check_violations(G, None, ThresholdPolicy(0.1, 0.5), 0.5) == ["max_decline_rate"]


def test_fallback_monitor_triggers_and_cools_down():
    m = FallbackMonitor(Guardrails(fallback_margin=0.1, fallback_min_cost=1.0, fallback_cooldown=3))
    assert not m.update(10.5, 10.0)  # within margin
    assert not m.update(50.0, 0.5)  # too little evidence
    assert m.update(12.0, 10.0)
    assert [m.update(1.0, 10.0) for _ in range(3)] == [True, True, False]
    assert m.triggers == 1


def test_fallback_monitor_needs_an_excess_beyond_the_noise():
    g = Guardrails(fallback_margin=0.1, fallback_min_cost=1.0, fallback_z=3.0)
    assert not FallbackMonitor(g).update(20.0, 10.0, 5.0)  # 2x static, but 2 standard errors
    assert FallbackMonitor(g).update(20.0, 10.0, 3.0)  # 3.3 standard errors
    assert FallbackMonitor(Guardrails(fallback_margin=0.1, fallback_z=0.0)).update(20.0, 10.0, 1e9)


def test_fallback_noise_is_one_payment_for_one_payment_and_shrinks_with_many():
    from riskflow.policies import ObservationBuilder, WindowStats

    ref = reference(stream(hours=10, seed=9))
    mid = (ref.static_t_review + ref.static_t_decline) / 2

    def excess_in_noise_units(n: int) -> float:
        # n released frauds of 1,000 the agent approved and static would have reviewed
        w = WindowStats(
            t_end=1,
            released_label=np.ones(n, np.int8),
            released_amount=np.full(n, 1_000.0),
            released_score=np.full(n, mid),
            released_decision=np.zeros(n, np.int8),
        )
        b = ObservationBuilder(ref, COST)
        b.update(w, ref.static_policy())
        agent, static = b.fallback_costs
        return (agent - static) / b.fallback_noise

    assert excess_in_noise_units(1) == pytest.approx(1.0)
    assert excess_in_noise_units(100) == pytest.approx(10.0)


def test_default_fallback_catches_a_reckless_agent_with_labels_days_late():
    # the default margin, significance and 14-day evidence delay; labels ~3 days late
    s = stream(hours=24 * 30, per_hour=100, seed=6, delay_ms=3 * 24 * 3_600_000)
    ref = reference(s)
    g = Guardrails(max_step=5.0, t_review_min=0.001, t_decline_min=0.001, max_decline_rate=1.0)
    reckless = ActorProposer(lambda obs: np.array([1.0, 1.0]), ref, 6.0)
    agent = OnlineAgent(reckless, ref, COST, g, max_offset=6.0)
    r = run_policy(s, agent, COST, audit=g)
    assert agent.monitor.triggers >= 1
    no_fb = run_policy(s, OnlineAgent(reckless, ref, COST, g, max_offset=6.0, fallback=False), COST)
    assert r.cost["total"] < no_fb.cost["total"]


def test_fallback_hands_over_to_static_when_agent_costs_too_much():
    # labels arrive within hours, so the observed cost catches a reckless agent
    s = stream(hours=120, seed=4, delay_ms=2 * 3_600_000)
    ref = reference(s)
    g = Guardrails(
        max_step=5.0,
        t_review_min=0.001,
        t_decline_min=0.001,
        max_decline_rate=1.0,
        fallback_margin=0.1,
        fallback_cooldown=12,
        fallback_evidence_delay_ms=2 * 3_600_000,
    )
    reckless = ActorProposer(
        lambda obs: np.array([1.0, 1.0]), ref, 6.0
    )  # approves nearly all fraud
    agent = OnlineAgent(reckless, ref, COST, g, max_offset=6.0)
    r = run_policy(s, agent, COST, audit=g)
    assert agent.monitor.triggers >= 1
    assert r.extra["fallback_intervals"] > 0
    fb = r.thresholds[r.thresholds["fallback"]]
    assert (fb["source"] == "fallback").all()
    # while in fallback the live thresholds are the static ones
    assert np.allclose(fb["t_review"].iloc[-1], ref.static_t_review)
    no_fb = run_policy(s, OnlineAgent(reckless, ref, COST, g, max_offset=6.0, fallback=False), COST)
    assert r.cost["total"] < no_fb.cost["total"]


def test_shadow_mode_decides_static_and_logs_the_proposal():
    s = stream(hours=30, seed=5)
    ref = reference(s)
    agent = OnlineAgent(
        ActorProposer(lambda obs: np.array([0.5, -0.5]), ref), ref, COST, G, shadow=True
    )
    r = run_policy(s, agent, COST)
    assert np.allclose(r.thresholds["t_review"], ref.static_t_review)
    assert all(e["shadow"] is not None for e in agent.log)
    assert agent.log[-1]["shadow"][0] > ref.static_t_review


def test_guardrails_validate():
    with pytest.raises(PolicyConfigError, match="max_step"):
        Guardrails(max_step=0)
    with pytest.raises(PolicyConfigError, match="max_decline_rate"):
        Guardrails(max_decline_rate=0)


def test_agent_policy_in_batches_matches_the_interval_replay():
    from riskflow.policies import AgentPolicy
    from riskflow.policies.backtest import ScoredStream

    s0 = stream(hours=30, seed=8)
    s = ScoredStream(
        s0.ts,
        s0.score,
        s0.amount,
        s0.is_fraud,
        np.full(len(s0), np.inf),
        np.full(len(s0), -1, np.int8),
    )
    ref = reference(s)

    def make():
        return OnlineAgent(ActorProposer(Adversary(), ref), ref, COST, G, fallback=False)

    want = run_policy(s, make(), COST)
    published = []
    ap = AgentPolicy(make(), publish=published.append)
    cuts = np.sort(np.random.default_rng(0).choice(len(s), 40, replace=False))
    got = np.concatenate(
        [
            ap.decide_batch(s.score[a:b], s.ts[a:b], s.amount[a:b])
            for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(s)], strict=True)
        ]
    )
    np.testing.assert_array_equal(got, want.decisions)
    assert len(published) == len(want.thresholds) - 1


def test_fallback_waits_for_matured_evidence_before_judging_extra_reviews():
    # an agent that reviews more pays at once but is repaid only when chargebacks come
    s = stream(hours=72, seed=9, delay_ms=20 * 86_400_000)
    ref = reference(s)
    eager = ActorProposer(lambda obs: np.array([-1.0, 0.0]), ref, 2.0)
    quick = Guardrails(fallback_evidence_delay_ms=0, max_decline_rate=1.0)
    patient = Guardrails(max_decline_rate=1.0)  # 14 days by default
    runs = [run_policy(s, OnlineAgent(eager, ref, COST, g), COST) for g in (quick, patient)]
    assert runs[0].extra["fallback_triggers"] >= 1  # judged on review costs alone
    assert runs[1].extra["fallback_triggers"] == 0


def test_fallback_evidence_winsorises_amounts():
    from riskflow.policies import ObservationBuilder, WindowStats

    s = stream(hours=10, seed=9)
    ref = reference(s)
    # one released fraud of 1,000,000 the agent approved and static would have reviewed
    score = np.array([(ref.static_t_review + ref.static_t_decline) / 2])
    w = WindowStats(
        t_end=1,
        released_label=np.array([1], np.int8),
        released_amount=np.array([1e6]),
        released_score=score,
        released_decision=np.array([0], np.int8),
    )
    capped = ObservationBuilder(ref, COST, evidence_amount_cap=5_000.0)
    raw = ObservationBuilder(ref, COST)
    capped.update(w, ref.static_policy())
    raw.update(w, ref.static_policy())
    a_c, s_c = capped.fallback_costs
    a_r, s_r = raw.fallback_costs
    assert a_r / a_c == pytest.approx((1e6 + COST.chargeback_fee) / (5_000 + COST.chargeback_fee))
    assert s_c == s_r  # static's counterfactual review costs the same either way
    assert capped.observed_costs == raw.observed_costs  # the observation keeps the true amounts


def test_released_missed_ratio_rises_when_released_frauds_were_scored_low():
    from riskflow.policies import OBS_NAMES, ObservationBuilder, WindowStats

    s = stream(hours=10, seed=9)
    ref = reference(s)
    i = OBS_NAMES.index("released_missed_ratio")
    b = ObservationBuilder(ref, COST)
    assert b.observation(ref.static_policy(), 0)[i] == pytest.approx(0.0, abs=1e-6)
    low = np.full(20, ref.static_t_review / 2)  # frauds the static policy approved
    w = WindowStats(
        t_end=1,
        released_label=np.ones(20, np.int8),
        released_amount=np.full(20, 100.0),
        released_score=low,
        released_decision=np.zeros(20, np.int8),
    )
    assert b.update(w, ref.static_policy())[i] > 0.5


def test_daily_decline_budget_holds_the_cap_when_a_fraud_wave_starts_at_night():
    # 10x fraud from 01:00 to 13:00 on day 1; the agent always asks for the lowest t_decline
    s = stream(hours=96, per_hour=200, seed=11, spike=(25, 37, 10.0))
    ref = reference(s)
    g = Guardrails(max_step=0.5, t_review_min=0.001, t_decline_min=0.001, max_decline_rate=0.03)

    def run(budget: bool):
        agent = OnlineAgent(
            ActorProposer(lambda obs: np.array([-1.0, -1.0]), ref, 6.0),
            ref,
            COST,
            g,
            max_offset=6.0,
            fallback=False,
        )
        if not budget:  # what the cap on the last day's scores alone lets through
            agent._decline_share = lambda t_start: None
        r = run_policy(s, agent, COST, audit=g)
        day = (s.ts - s.ts[0] // 86_400_000 * 86_400_000) // 86_400_000
        return r, np.bincount(day, weights=r.decisions == 2) / np.bincount(day)

    r, rate = run(budget=True)
    assert r.violations == {}
    assert rate[1] <= g.max_decline_rate
    unbudgeted, rate_unbudgeted = run(budget=False)
    assert unbudgeted.violations == {"max_decline_rate": 1}  # the wave's day: ~4.3%
    assert rate_unbudgeted[1] > g.max_decline_rate
