"""One day of legitimate card activity, fully vectorised."""

from __future__ import annotations

import numpy as np

from riskflow.simulate._rows import (
    ATM,
    CHIP,
    CNP,
    CONTACTLESS,
    ECOM,
    HOUR_MS,
    MAGSTRIPE,
    MANUAL,
    MOTO,
    P2P,
    POS,
    TOKEN,
    Rows,
)
from riskflow.simulate._world import (
    ATM_MCC_IDX,
    MCC_MU,
    MCC_SIGMA,
    P2P_MCC_IDX,
    World,
    random_other_city,
    sample_atm,
    sample_ecom,
    sample_pos,
)

# Hour-of-day profiles (relative volume): shops peak at lunch and after work,
# online shopping in the evening.
POS_HOURS = np.array(
    [
        0.3,
        0.2,
        0.1,
        0.1,
        0.1,
        0.3,
        0.8,
        1.8,
        2.8,
        3.5,
        4.2,
        5.0,
        6.0,
        5.5,
        5.0,
        5.0,
        5.5,
        6.5,
        7.0,
        6.0,
        4.5,
        3.0,
        1.8,
        0.8,
    ]
)
ECOM_HOURS = np.array(
    [
        1.5,
        0.9,
        0.5,
        0.3,
        0.3,
        0.4,
        0.8,
        1.5,
        2.5,
        3.0,
        3.3,
        3.5,
        3.8,
        3.6,
        3.5,
        3.5,
        3.8,
        4.2,
        4.8,
        5.5,
        6.5,
        6.8,
        5.5,
        3.2,
    ]
)
_POS_CUM = np.cumsum(POS_HOURS) / POS_HOURS.sum()
_ECOM_CUM = np.cumsum(ECOM_HOURS) / ECOM_HOURS.sum()
#: Monday..Sunday volume (Fri/Sat busiest, Sunday shops closed in much of Europe).
WEEKDAY = np.array([0.95, 0.97, 1.0, 1.02, 1.12, 1.10, 0.84])
#: Share of customers away from home on a given day (legitimate geo jumps).
TRAVEL_SHARE = 0.02
#: Share of travellers abroad (the rest visit another city at home).
TRAVEL_ABROAD = 0.4
#: Customers per day who buy a run of small in-app / digital items (looks like card testing).
MICRO_BURST_SHARE = 0.004
MICRO_PRICES = np.array([0.99, 1.99, 2.49, 2.99, 4.99])
ATM_AMOUNTS = np.array([20.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0])
ATM_P = np.cumsum([0.12, 0.3, 0.28, 0.1, 0.12, 0.05, 0.03])


def hour_of_day(rng: np.random.Generator, cum: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Fractional hour in [0, 24): profile hour + customer habit shift, wrapped."""
    h = np.searchsorted(cum, rng.random(len(shift)), side="right").astype(np.float64)
    return np.mod(h + rng.random(len(shift)) + shift, 24.0)


def pick(rng: np.random.Generator, cum_p: np.ndarray, n: int) -> np.ndarray:
    """Draw category indices from cumulative probabilities (vectorised)."""
    return np.minimum(
        np.searchsorted(cum_p, rng.random(n) * cum_p[-1], side="right"), len(cum_p) - 1
    )


def amounts(
    rng: np.random.Generator, world: World, term: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Lognormal amount by the terminal's MCC, scaled by the customer's habit."""
    mcc = world.merch_mcc[world.term_merchant[term]]
    a = np.exp(MCC_MU[mcc] + MCC_SIGMA[mcc] * rng.standard_normal(len(term))) * scale
    atm = mcc == ATM_MCC_IDX
    if atm.any():
        a[atm] = ATM_AMOUNTS[pick(rng, ATM_P, int(atm.sum()))]
    return np.maximum(a, 0.5)


def own_device(rng: np.random.Generator, world: World, cust: np.ndarray) -> np.ndarray:
    return world.cust_dev_start[cust] + (rng.random(len(cust)) * world.cust_n_dev[cust]).astype(
        np.int64
    )


def own_ip(rng: np.random.Generator, world: World, cust: np.ndarray) -> np.ndarray:
    return world.cust_ip_start[cust] + (rng.random(len(cust)) * world.cust_n_ip[cust]).astype(
        np.int64
    )


def domestic_pool_ip(rng: np.random.Generator, world: World, country: np.ndarray) -> np.ndarray:
    s = world.pool_ip_country_start[country]
    e = world.pool_ip_country_end[country]
    return s + (rng.random(len(country)) * (e - s)).astype(np.int64)


def online_channel(rng: np.random.Generator, world: World, term: np.ndarray) -> np.ndarray:
    """ecom, or p2p at transfer services, or moto at some travel / mail-order merchants."""
    m = world.term_merchant[term]
    ch = np.full(len(term), ECOM, dtype=np.int8)
    ch[rng.random(len(term)) < world.merch_moto[m]] = MOTO
    ch[world.merch_mcc[m] == P2P_MCC_IDX] = P2P
    return ch


def online_entry(rng: np.random.Generator, channel: np.ndarray) -> np.ndarray:
    entry = np.where(rng.random(len(channel)) < 0.85, CNP, TOKEN).astype(np.int8)
    entry[channel == MOTO] = MANUAL
    entry[channel == P2P] = TOKEN
    return entry


def legit_day(
    rng: np.random.Generator,
    world: World,
    day: int,
    day_start: int,
    volume: float,
    ecom_boost: float,
) -> Rows:
    """All legitimate transactions of one day (unsorted).

    ``volume`` multiplies every customer's rate (weekday rhythm, drift);
    ``ecom_boost`` multiplies the online share (seasonal drift).
    """
    C = world.n_customers
    k = rng.poisson(world.cust_rate * volume)
    n = int(k.sum())
    cust = np.repeat(np.arange(C, dtype=np.int64), k)
    travelling = rng.random(C) < TRAVEL_SHARE
    here = world.cust_city.astype(np.int64)
    if travelling.any():
        here = here.copy()
        ti = np.flatnonzero(travelling)
        abroad = rng.random(len(ti)) < TRAVEL_ABROAD
        here[ti[abroad]] = random_other_city(rng, world, here[ti[abroad]], far=True)
        here[ti[~abroad]] = random_other_city(rng, world, here[ti[~abroad]], far=False)
    city = here[cust]
    away = travelling[cust]

    u = rng.random(n)
    e = np.minimum(world.cust_ecom[cust] * ecom_boost, 0.9)
    is_ecom = u < e
    is_atm = ~is_ecom & (u < e + world.cust_atm[cust])
    is_pos = ~is_ecom & ~is_atm

    card = world.cust_card_start[cust] + (rng.random(n) ** 1.5 * world.cust_n_cards[cust]).astype(
        np.int64
    )

    term = np.empty(n, dtype=np.int64)
    regular = is_pos & ~away & (rng.random(n) < 0.5)
    ri = np.flatnonzero(regular)
    term[ri] = world.cust_regular[cust[ri], rng.integers(0, 4, len(ri))]
    pi = np.flatnonzero(is_pos & ~regular)
    term[pi] = sample_pos(rng, world, city[pi])
    ai = np.flatnonzero(is_atm)
    term[ai] = sample_atm(rng, world, city[ai])
    ei = np.flatnonzero(is_ecom)
    term[ei] = sample_ecom(rng, world, len(ei))

    channel = np.full(n, POS, dtype=np.int8)
    channel[ai] = ATM
    channel[ei] = online_channel(rng, world, term[ei])

    entry = np.empty(n, dtype=np.int8)
    up = rng.random(n)
    entry[:] = np.where(
        up < 0.55, CHIP, np.where(up < 0.92, CONTACTLESS, np.where(up < 0.95, MAGSTRIPE, TOKEN))
    )
    entry[ai] = np.where(up[ai] < 0.97, CHIP, MAGSTRIPE)
    entry[ei] = online_entry(rng, channel[ei])

    hours = np.empty(n)
    shift = world.cust_shift[cust]
    cp = np.flatnonzero(~is_ecom)
    hours[cp] = hour_of_day(rng, _POS_CUM, shift[cp])
    hours[ei] = hour_of_day(rng, _ECOM_CUM, shift[ei])
    time = day_start + (hours * HOUR_MS).astype(np.int64)

    amount = amounts(rng, world, term, world.cust_scale[cust])

    device = np.full(n, -1, dtype=np.int64)
    ip = np.full(n, -1, dtype=np.int64)
    app = np.flatnonzero((channel == ECOM) | (channel == P2P))
    if len(app):
        c_app = cust[app]
        dev = own_device(rng, world, c_app)
        new_dev = rng.random(len(app)) < 0.015  # new phone / browser, borrowed laptop
        lo, hi = world.other_dev
        dev[new_dev] = rng.integers(lo, hi, int(new_dev.sum()))
        device[app] = dev
        addr = own_ip(rng, world, c_app)
        mobile = rng.random(len(app)) < 0.12  # mobile network / café wifi
        home_country = world.city_country[world.cust_city[c_app[mobile]]].astype(np.int64)
        addr[mobile] = domestic_pool_ip(rng, world, home_country)
        ip[app] = addr

    uid = (np.int64(day) << np.int64(32)) + np.arange(n, dtype=np.int64)
    base = Rows(
        uid=uid,
        time=time,
        card=card,
        term=term,
        amount=amount,
        channel=channel,
        entry=entry,
        device=device,
        ip=ip,
        scen=np.zeros(n, dtype=np.int8),
        incident=np.full(n, -1, dtype=np.int64),
    )
    return Rows.concat([base, _micro_bursts(rng, world, day, day_start, volume, n)])


def _micro_bursts(
    rng: np.random.Generator, world: World, day: int, day_start: int, volume: float, uid0: int
) -> Rows:
    """Runs of small digital purchases by real customers on their own devices."""
    from riskflow.simulate._world import TESTING_MCC_IDX, sample_ecom_mcc

    nb = int(rng.poisson(world.n_customers * MICRO_BURST_SHARE * volume))
    if nb == 0:
        return Rows.empty()
    cust = rng.integers(0, world.n_customers, nb)
    k = rng.integers(2, 8, nb)
    pos = np.repeat(np.arange(nb), k)
    m = len(pos)
    starts = np.concatenate([[0], np.cumsum(k)[:-1]])
    gaps = (rng.exponential(60_000, m) + 3_000).astype(np.int64)
    gaps[starts] = 0
    cs = np.cumsum(gaps)
    off = cs - np.repeat(cs[starts], k)
    t0 = day_start + (hour_of_day(rng, _ECOM_CUM, world.cust_shift[cust]) * HOUR_MS).astype(
        np.int64
    )
    t0 = np.minimum(t0, day_start + 23 * HOUR_MS)  # the run stays within the day
    shop = sample_ecom_mcc(rng, world, TESTING_MCC_IDX, nb)
    c = cust[pos]
    return Rows(
        uid=(np.int64(day) << np.int64(32)) + uid0 + np.arange(m, dtype=np.int64),
        time=t0[pos] + off,
        card=world.cust_card_start[c],
        term=shop[pos].astype(np.int64),
        amount=MICRO_PRICES[rng.integers(0, len(MICRO_PRICES), m)],
        channel=np.full(m, ECOM, dtype=np.int8),
        entry=np.where(rng.random(m) < 0.6, TOKEN, CNP).astype(np.int8),
        device=own_device(rng, world, cust)[pos],
        ip=own_ip(rng, world, cust)[pos],
        scen=np.zeros(m, dtype=np.int8),
        incident=np.full(m, -1, dtype=np.int64),
    )


__all__ = ["legit_day", "WEEKDAY", "POS_HOURS", "ECOM_HOURS", "MAGSTRIPE"]
