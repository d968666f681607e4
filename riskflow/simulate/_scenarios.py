"""Fraud scenarios: each draws ``n`` incidents starting on one day.

A scenario returns :class:`Rows` (fraud rows with ``scen`` set, plus any
legitimate rows the story needs, e.g. the owner still using the card at home).
Rows may fall on later days; the engine holds them until their day comes.
Signatures are learnable but overlap with legitimate behaviour on purpose:
customers also travel, buy new phones, make small digital purchases and big
one-off purchases.
"""

from __future__ import annotations

import numpy as np

from riskflow.simulate._legit import (
    amounts,
    domestic_pool_ip,
    online_channel,
    online_entry,
    own_device,
    own_ip,
    pick,
)
from riskflow.simulate._rows import (
    ATM,
    CHIP,
    CNP,
    CONTACTLESS,
    DAY_MS,
    ECOM,
    FRAUD_UID_BIT,
    HOUR_MS,
    MAGSTRIPE,
    MANUAL,
    MOTO,
    POS,
    Rows,
)
from riskflow.simulate._world import (
    ONLINE_RISKY_MCC_IDX,
    P2P_MCC_IDX,
    TESTING_MCC_IDX,
    World,
    random_other_city,
    sample_atm,
    sample_ecom,
    sample_ecom_mcc,
    sample_pos,
    scenario_code,
)

MIN_MS = 60_000

#: Mean fraudulent transactions per incident (used to turn a rate into incidents).
MEAN_FRAUD_TX: dict[str, float] = {
    "stolen_card": 3.5,
    "card_testing": 11.0,
    "account_takeover": 4.0,
    "skimming": 2.5,  # per skimmed card
    "high_amount": 1.0,
    "merchant_bustout": 35.0,
}


class Ids:
    """Hands out unique row uids and incident ids for one simulation."""

    def __init__(self) -> None:
        self.next_row = 0
        self.next_incident = 0
        self.next_fraud_dev = 0
        self.next_bustout = 0
        self.bust_log: list[tuple[int, int]] = []  # (terminal, day) of each bust-out
        self.skim_active: dict[int, int] = {}  # compromised terminal -> last skimming day

    def rows(self, day: int, n: int) -> np.ndarray:
        start = self.next_row
        self.next_row += n
        if self.next_row >= 1 << 31:
            raise OverflowError("more than 2**31 scenario rows")  # never at sane sizes
        return (
            (np.int64(day) << np.int64(32))
            + FRAUD_UID_BIT
            + np.arange(start, start + n, dtype=np.int64)
        )

    def incidents(self, n: int) -> np.ndarray:
        start = self.next_incident
        self.next_incident += n
        return np.arange(start, start + n, dtype=np.int64)

    def fraud_devices(self, world: World, n: int) -> np.ndarray:
        lo, hi = world.fraud_dev
        out = lo + (self.next_fraud_dev + np.arange(n)) % (hi - lo)
        self.next_fraud_dev += n
        return out.astype(np.int64)


def _fraud_ip(
    rng: np.random.Generator, world: World, cust: np.ndarray, foreign_share: float
) -> np.ndarray:
    lo, hi = world.fraud_ip
    ip = rng.integers(lo, hi, len(cust))
    local = rng.random(len(cust)) >= foreign_share  # proxies in the victim's country
    country = world.city_country[world.cust_city[cust[local]]].astype(np.int64)
    ip[local] = domestic_pool_ip(rng, world, country)
    return ip


def _sizes(rng: np.random.Generator, n: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-incident row counts in [lo, hi] and each row's incident position."""
    k = rng.integers(lo, hi + 1, n)
    return k, np.repeat(np.arange(n), k)


def _gaps(
    rng: np.random.Generator, k: np.ndarray, mean_ms: float, min_ms: int = 1_000
) -> np.ndarray:
    """Cumulative offsets within each incident (first row at 0)."""
    g = (rng.exponential(mean_ms, int(k.sum())) + min_ms).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(k)[:-1]])
    g[starts] = 0
    cs = np.cumsum(g)
    return cs - np.repeat(cs[starts], k)


def stolen_card(
    rng: np.random.Generator, world: World, ids: Ids, n: int, day: int, day_start: int
) -> Rows:
    """Counterfeit / stolen card used in person far from home while the owner shops at home."""
    if n == 0:
        return Rows.empty()
    K = len(world.card_customer)
    card = rng.integers(0, K, n)
    cust = world.card_customer[card].astype(np.int64)
    home = world.cust_city[cust].astype(np.int64)
    far = rng.random(n) < 0.7
    dest = np.empty(n, dtype=np.int64)
    if far.any():
        dest[far] = random_other_city(rng, world, home[far], far=True)
    if (~far).any():
        dest[~far] = random_other_city(rng, world, home[~far], far=False)
    t0 = day_start + (rng.uniform(6.0, 22.0, n) * HOUR_MS).astype(np.int64)
    inc = ids.incidents(n)

    k, pos = _sizes(rng, n, 2, 5)
    m = len(pos)
    time = t0[pos] + _gaps(rng, k, 40 * MIN_MS, 5 * MIN_MS)
    at_atm = rng.random(m) < 0.3
    term = np.where(at_atm, sample_atm(rng, world, dest[pos]), sample_pos(rng, world, dest[pos]))
    amount = np.where(
        at_atm, rng.choice([200.0, 300.0, 400.0, 500.0], m), rng.lognormal(np.log(150.0), 0.9, m)
    )
    u = rng.random(m)
    entry = np.where(u < 0.3, MAGSTRIPE, np.where(u < 0.65, CHIP, CONTACTLESS)).astype(np.int8)
    fraud = Rows.build(
        m,
        uid=ids.rows(day, m),
        time=time,
        card=card[pos],
        term=term,
        amount=amount,
        channel=np.where(at_atm, ATM, POS),
        entry=entry,
        scen=scenario_code("stolen_card"),
        incident=inc[pos],
    )
    # The owner still has the card: a legitimate purchase at home shortly before.
    a = np.flatnonzero(rng.random(n) < 0.6)
    at = t0[a] - (rng.uniform(0.3, 3.0, len(a)) * HOUR_MS).astype(np.int64)
    aterm = world.cust_regular[cust[a], rng.integers(0, 4, len(a))].astype(np.int64)
    anchor = Rows.build(
        len(a),
        uid=ids.rows(day, len(a)),
        time=at,
        card=card[a],
        term=aterm,
        amount=amounts(rng, world, aterm, world.cust_scale[cust[a]]),
        channel=POS,
        entry=np.where(rng.random(len(a)) < 0.6, CHIP, CONTACTLESS),
    )
    return Rows.concat([anchor, fraud])


def card_testing(
    rng: np.random.Generator, world: World, ids: Ids, n: int, day: int, day_start: int
) -> Rows:
    """A ring checks a card with tiny online payments, then spends it."""
    if n == 0:
        return Rows.empty()
    K = len(world.card_customer)
    card = rng.integers(0, K, n)
    cust = world.card_customer[card].astype(np.int64)
    lo, hi = world.ring_dev
    dev = rng.integers(lo, hi, n)
    fresh = rng.random(n) < 0.5
    dev[fresh] = ids.fraud_devices(world, int(fresh.sum()))
    ip = _fraud_ip(rng, world, cust, 0.7)
    t0 = day_start + (rng.uniform(0.0, 20.0, n) * HOUR_MS).astype(np.int64)
    inc = ids.incidents(n)
    shop_a = sample_ecom_mcc(rng, world, TESTING_MCC_IDX, n)
    shop_b = sample_ecom_mcc(rng, world, TESTING_MCC_IDX, n)

    k, pos = _sizes(rng, n, 3, 15)
    m = len(pos)
    off = _gaps(rng, k, 25_000, 2_000)
    small = Rows.build(
        m,
        uid=ids.rows(day, m),
        time=t0[pos] + off,
        card=card[pos],
        term=np.where(rng.random(m) < 0.7, shop_a[pos], shop_b[pos]),
        amount=np.round(rng.uniform(0.5, 4.99, m), 2),
        channel=ECOM,
        entry=CNP,
        device=dev[pos],
        ip=ip[pos],
        scen=scenario_code("card_testing"),
        incident=inc[pos],
    )
    end = np.zeros(n, dtype=np.int64)
    np.maximum.at(end, pos, t0[pos] + off)
    k2, pos2 = _sizes(rng, n, 1, 3)
    m2 = len(pos2)
    t1 = end + (rng.uniform(0.3, 10.0, n) * HOUR_MS).astype(np.int64)
    big = Rows.build(
        m2,
        uid=ids.rows(day, m2),
        time=t1[pos2] + _gaps(rng, k2, 20 * MIN_MS, MIN_MS),
        card=card[pos2],
        term=sample_ecom_mcc(rng, world, ONLINE_RISKY_MCC_IDX, m2),
        amount=rng.lognormal(np.log(380.0), 0.7, m2),
        channel=ECOM,
        entry=CNP,
        device=dev[pos2],
        ip=ip[pos2],
        scen=scenario_code("card_testing"),
        incident=inc[pos2],
    )
    return Rows.concat([small, big])


def account_takeover(
    rng: np.random.Generator, world: World, ids: Ids, n: int, day: int, day_start: int
) -> Rows:
    """Credentials phished: new device, new IP, spending unlike the owner's."""
    if n == 0:
        return Rows.empty()
    cust = rng.integers(0, world.n_customers, n)
    card = world.cust_card_start[cust]
    dev = ids.fraud_devices(world, n)
    ip = _fraud_ip(rng, world, cust, 0.6)
    t0 = day_start + (rng.uniform(0.0, 24.0, n) * HOUR_MS).astype(np.int64)
    inc = ids.incidents(n)
    k, pos = _sizes(rng, n, 2, 6)
    m = len(pos)
    u = rng.random(m)
    p2p_terms = world.ecom_terms[
        world.merch_mcc[world.term_merchant[world.ecom_terms]] == P2P_MCC_IDX
    ]
    term = np.where(
        u < 0.6,
        sample_ecom_mcc(rng, world, ONLINE_RISKY_MCC_IDX, m),
        sample_ecom(rng, world, m),
    )
    if len(p2p_terms):
        tp = u >= 0.8
        term[tp] = p2p_terms[rng.integers(0, len(p2p_terms), int(tp.sum()))]
    channel = online_channel(rng, world, term)
    channel[channel == MOTO] = ECOM
    return Rows.build(
        m,
        uid=ids.rows(day, m),
        time=t0[pos] + _gaps(rng, k, 3 * HOUR_MS, 2 * MIN_MS),
        card=card[pos],
        term=term,
        amount=world.cust_scale[cust[pos]] * rng.lognormal(np.log(280.0), 0.8, m),
        channel=channel,
        entry=online_entry(rng, channel),
        device=dev[pos],
        ip=ip[pos],
        scen=scenario_code("account_takeover"),
        incident=inc[pos],
    )


def high_amount(
    rng: np.random.Generator, world: World, ids: Ids, n: int, day: int, day_start: int
) -> Rows:
    """One payment many times the customer's usual, where the customer usually shops."""
    if n == 0:
        return Rows.empty()
    K = len(world.card_customer)
    card = rng.integers(0, K, n)
    cust = world.card_customer[card].astype(np.int64)
    online = rng.random(n) < 0.5
    term = np.where(
        online, sample_ecom(rng, world, n), sample_pos(rng, world, world.cust_city[cust])
    )
    channel = np.where(online, ECOM, POS).astype(np.int8)
    oi = np.flatnonzero(online)
    channel[oi] = online_channel(rng, world, term[oi])
    channel[channel == MOTO] = ECOM
    entry = np.where(rng.random(n) < 0.5, CHIP, CONTACTLESS).astype(np.int8)
    entry[oi] = online_entry(rng, channel[oi])
    device = np.full(n, -1, dtype=np.int64)
    ip = np.full(n, -1, dtype=np.int64)
    device[oi] = own_device(rng, world, cust[oi])  # family member / malware on own device
    ip[oi] = own_ip(rng, world, cust[oi])
    amount = amounts(rng, world, term, world.cust_scale[cust]) * rng.uniform(6.0, 20.0, n)
    return Rows.build(
        n,
        uid=ids.rows(day, n),
        time=day_start + (rng.uniform(8.0, 23.0, n) * HOUR_MS).astype(np.int64),
        card=card,
        term=term,
        amount=amount,
        channel=channel,
        entry=entry,
        device=device,
        ip=ip,
        scen=scenario_code("high_amount"),
        incident=ids.incidents(n),
    )


def skimming(
    rng: np.random.Generator,
    world: World,
    ids: Ids,
    n_cards: int,
    day: int,
    day_start: int,
    legit: Rows,
) -> tuple[Rows, np.ndarray, np.ndarray]:
    """Skim cards at a few busy terminals today; clone them and cash out 2-20 days later.

    Returns the fraud rows and the compromised terminals with their compromise times.
    """
    none = (Rows.empty(), np.zeros(0, np.int64), np.zeros(0, np.int64))
    if n_cards == 0 or len(legit) == 0:
        return none
    present = np.flatnonzero((legit.channel == POS) | (legit.channel == ATM))
    if len(present) == 0:
        return none
    # Skimmers stay in place for a few days; add busy terminals (picked by
    # traffic) until today's quota of skimmed cards is met.
    active = np.array([t for t, until in ids.skim_active.items() if until >= day], dtype=np.int64)
    chosen = np.zeros(0, dtype=np.int64)
    for _ in range(50):
        sel = present[np.isin(legit.term[present], active)]
        order = sel[rng.permutation(len(sel))]
        _, first = np.unique(legit.card[order], return_index=True)
        chosen = order[np.sort(first)][:n_cards]
        if len(chosen) >= n_cards:
            break
        t = int(legit.term[present[rng.integers(0, len(present))]])
        ids.skim_active[t] = day + int(rng.integers(2, 8))
        active = np.append(active, t)
    if len(chosen) == 0:
        return none
    card = legit.card[chosen]
    n = len(card)
    cust = world.card_customer[card].astype(np.int64)
    home = world.cust_city[cust].astype(np.int64)
    dest = random_other_city(rng, world, home, far=bool(rng.random() < 0.5))
    local = rng.random(n) < 0.2  # clones used in the victim's own city
    dest[local] = home[local]
    when = (
        day_start
        + rng.integers(2, 21, n) * DAY_MS
        + (rng.uniform(0.0, 23.0, n) * HOUR_MS).astype(np.int64)
    )
    inc = ids.incidents(n)
    k, pos = _sizes(rng, n, 1, 4)
    m = len(pos)
    at_atm = rng.random(m) < 0.7
    term = np.where(at_atm, sample_atm(rng, world, dest[pos]), sample_pos(rng, world, dest[pos]))
    amount = np.where(
        at_atm,
        rng.choice([200.0, 250.0, 300.0, 400.0, 500.0], m),
        rng.lognormal(np.log(200.0), 0.7, m),
    )
    rows = Rows.build(
        m,
        uid=ids.rows(day, m),
        time=when[pos] + _gaps(rng, k, 30 * MIN_MS, 3 * MIN_MS),
        card=card[pos],
        term=term,
        amount=amount,
        channel=np.where(at_atm, ATM, POS),
        entry=np.where(rng.random(m) < 0.8, MAGSTRIPE, CHIP),
        scen=scenario_code("skimming"),
        incident=inc[pos],
    )
    ct = np.unique(legit.term[chosen])
    ctime = np.array(
        [legit.time[chosen][legit.term[chosen] == t].min() for t in ct], dtype=np.int64
    )
    return rows, ct.astype(np.int64), ctime


def merchant_bustout(
    rng: np.random.Generator, world: World, ids: Ids, n: int, day: int, day_start: int
) -> Rows:
    """A collusive online merchant: some normal trade, then a burst of stolen cards.

    Half are new merchants opened for the purpose (bust-out); the others are
    small existing merchants that turn collusive.
    """
    parts: list[Rows] = []
    K = len(world.card_customer)
    small = world.ecom_terms[
        (world.ecom_open <= day)
        & (world.merch_mcc[world.term_merchant[world.ecom_terms]] != P2P_MCC_IDX)
        & (world.ecom_pop < np.median(world.ecom_pop))
    ]
    for _ in range(n):
        free = small[~np.isin(small, [t for t, _ in ids.bust_log])]  # one bust-out each
        if rng.random() < 0.5 and len(free):
            b = int(free[rng.integers(0, len(free))])
        else:
            b = int(world.bustout_terms[ids.next_bustout % len(world.bustout_terms)])
            ids.next_bustout += 1
        ids.bust_log.append((b, day))
        # real customers buying normally: two days of warm-up, then alongside the bust
        span = int(rng.integers(1, 5))
        w = int(rng.integers(8, 40))
        wc = rng.integers(0, world.n_customers, w)
        wt = np.full(w, b, dtype=np.int64)
        parts.append(
            Rows.build(
                w,
                uid=ids.rows(day, w),
                time=day_start + rng.integers(0, (2 + span) * DAY_MS, w),
                card=world.cust_card_start[wc],
                term=wt,
                amount=amounts(rng, world, wt, world.cust_scale[wc]),
                channel=ECOM,
                entry=CNP,
                device=own_device(rng, world, wc),
                ip=own_ip(rng, world, wc),
            )
        )
        # bust: many cards, high amounts, over 1-4 days after the warm-up
        f = int(rng.integers(15, 56))
        fc = rng.integers(0, K, f)
        fcust = world.card_customer[fc].astype(np.int64)
        moto = rng.random(f) < 0.3
        devs = ids.fraud_devices(world, 3)
        t = day_start + 2 * DAY_MS + rng.integers(0, span * DAY_MS, f)
        parts.append(
            Rows.build(
                f,
                uid=ids.rows(day, f),
                time=t,
                card=fc,
                term=np.full(f, b),
                amount=rng.lognormal(np.log(260.0), 0.6, f),
                channel=np.where(moto, MOTO, ECOM),
                entry=np.where(moto, MANUAL, CNP),
                device=np.where(moto, -1, devs[rng.integers(0, 3, f)]),
                ip=np.where(moto, -1, _fraud_ip(rng, world, fcust, 0.5)),
                scen=scenario_code("merchant_bustout"),
                incident=ids.incidents(f),
            )
        )
    return Rows.concat(parts)


__all__ = [
    "Ids",
    "MEAN_FRAUD_TX",
    "stolen_card",
    "card_testing",
    "account_takeover",
    "high_amount",
    "skimming",
    "merchant_bustout",
    "pick",
]
