"""The simulated world: cities, customers, cards, devices, IPs, merchants, terminals.

Entities are struct-of-arrays (integer indices everywhere); their string ids
are built once as Arrow arrays so that a transaction column is one ``take``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from riskflow.simulate._strings import dec_strings, hex_strings, ipv4_strings, splitmix64
from riskflow.simulate.config import SCENARIOS, SimulationConfig

# --- static geography ------------------------------------------------------------
# (country, currency, rough EUR->local rate, first IPv4 octets used by its ISPs)
COUNTRIES: tuple[tuple[str, str, float, tuple[int, ...]], ...] = (
    ("DE", "EUR", 1.0, (77, 79, 84, 87, 91, 93)),
    ("FR", "EUR", 1.0, (78, 80, 82, 90, 92)),
    ("NL", "EUR", 1.0, (62, 83, 145)),
    ("ES", "EUR", 1.0, (81, 83, 88, 95)),
    ("IT", "EUR", 1.0, (79, 87, 93, 151)),
    ("PL", "PLN", 4.3, (31, 46, 83, 89)),
    ("GB", "GBP", 0.85, (2, 5, 81, 86)),
    ("US", "USD", 1.08, (23, 24, 66, 68, 73, 98)),
    ("BR", "BRL", 5.4, (177, 179, 187, 189)),
    ("TH", "THB", 38.0, (49, 58, 110, 171)),
    ("AE", "AED", 4.0, (5, 86, 94)),
)
# (name, country index, lat, lon, share of customers' homes, weight as a destination)
CITIES: tuple[tuple[str, int, float, float, float, float], ...] = (
    ("Berlin", 0, 52.52, 13.40, 3.6, 1.0),
    ("Hamburg", 0, 53.55, 9.99, 1.8, 0.5),
    ("Munich", 0, 48.14, 11.58, 1.5, 0.8),
    ("Cologne", 0, 50.94, 6.96, 1.1, 0.4),
    ("Frankfurt", 0, 50.11, 8.68, 0.8, 0.6),
    ("Paris", 1, 48.86, 2.35, 3.0, 1.5),
    ("Lyon", 1, 45.76, 4.84, 0.8, 0.3),
    ("Marseille", 1, 43.30, 5.37, 0.9, 0.3),
    ("Amsterdam", 2, 52.37, 4.90, 0.9, 0.9),
    ("Rotterdam", 2, 51.92, 4.48, 0.6, 0.2),
    ("Madrid", 3, 40.42, -3.70, 1.6, 0.8),
    ("Barcelona", 3, 41.39, 2.17, 1.6, 1.0),
    ("Rome", 4, 41.90, 12.50, 1.4, 1.0),
    ("Milan", 4, 45.46, 9.19, 1.3, 0.6),
    ("Warsaw", 5, 52.23, 21.01, 0.9, 0.3),
    ("London", 6, 51.51, -0.13, 2.0, 1.5),
    ("Manchester", 6, 53.48, -2.24, 0.5, 0.2),
    ("New York", 7, 40.71, -74.01, 0.0, 0.6),
    ("Miami", 7, 25.76, -80.19, 0.0, 0.3),
    ("Sao Paulo", 8, -23.55, -46.63, 0.0, 0.2),
    ("Bangkok", 9, 13.76, 100.50, 0.0, 0.3),
    ("Dubai", 10, 25.20, 55.27, 0.0, 0.3),
)
HOME_COUNTRIES = 7  # customers live in the first 7 countries (the issuer's market)

# (mcc, median amount EUR, lognormal sigma, weight in card-present, weight online)
MCCS: tuple[tuple[int, float, float, float, float], ...] = (
    (5411, 35.0, 0.7, 25.0, 2.0),  # grocery
    (5812, 38.0, 0.6, 12.0, 0.0),  # restaurants
    (5814, 11.0, 0.5, 12.0, 0.0),  # fast food
    (5541, 55.0, 0.4, 9.0, 0.0),  # fuel
    (5912, 20.0, 0.7, 6.0, 0.0),  # pharmacy
    (5311, 60.0, 0.9, 5.0, 3.0),  # department stores
    (5651, 65.0, 0.8, 7.0, 6.0),  # clothing
    (5732, 140.0, 1.0, 3.0, 6.0),  # electronics
    (5944, 180.0, 1.0, 1.0, 1.0),  # jewellery
    (4111, 4.0, 0.6, 8.0, 2.0),  # transit
    (7011, 160.0, 0.6, 2.0, 3.0),  # hotels
    (5999, 30.0, 1.0, 8.0, 6.0),  # misc retail
    (5942, 22.0, 0.6, 1.0, 5.0),  # books
    (4814, 30.0, 0.5, 1.0, 4.0),  # telecom
    (5816, 12.0, 0.9, 0.0, 5.0),  # digital games
    (5818, 8.0, 0.9, 0.0, 6.0),  # digital goods
    (4722, 350.0, 0.8, 0.5, 4.0),  # travel agencies
    (5964, 45.0, 0.8, 0.0, 3.0),  # direct marketing (also mail/phone order)
    (4829, 120.0, 1.0, 0.0, 2.0),  # money transfer (person to person)
    (8398, 25.0, 0.9, 0.0, 1.0),  # charities
)
ATM_MCC = 6011
MCC_CODES = np.array([m[0] for m in MCCS] + [ATM_MCC], dtype=np.int32)
MCC_MU = np.log(np.array([m[1] for m in MCCS] + [100.0]))
MCC_SIGMA = np.array([m[2] for m in MCCS] + [0.6])
ATM_MCC_IDX = len(MCCS)
RISKY_MCC_IDX = np.array([i for i, m in enumerate(MCCS) if m[0] in (5732, 5944, 5311, 5999)])
ONLINE_RISKY_MCC_IDX = np.array([i for i, m in enumerate(MCCS) if m[0] in (5732, 4722, 5999, 5311)])
TESTING_MCC_IDX = np.array([i for i, m in enumerate(MCCS) if m[0] in (5816, 5818, 8398)])
P2P_MCC_IDX = next(i for i, m in enumerate(MCCS) if m[0] == 4829)
MOTO_MCC_IDX = np.array([i for i, m in enumerate(MCCS) if m[0] in (4722, 5964)])

# Terminal kinds.
K_POS, K_ATM, K_ECOM, K_BUSTOUT = 0, 1, 2, 3
# A few issuer BINs (6 digits); the card number itself never exists here.
BINS = ("453201", "455673", "402400", "516732", "539923", "552211", "676770", "490011")

CHANNEL_NAMES = ("pos", "ecom", "atm", "moto", "p2p")  # codes = riskflow.schema.Channel
ENTRY_NAMES = ("chip", "contactless", "magstripe", "manual", "cnp", "token")  # = EntryMode
SCENARIO_NAMES = ("", *SCENARIOS)


def _pareto_weights(rng: np.random.Generator, n: int, a: float = 1.1) -> np.ndarray:
    # Heavy tail: a few merchants get a large share of the traffic.
    return np.minimum(rng.pareto(a, n) + 1.0, 500.0)


@dataclass
class World:
    """All entities, as arrays. Sizes: C customers, K cards, M merchants, T terminals."""

    # cities
    city_lat: np.ndarray
    city_lon: np.ndarray
    city_country: np.ndarray
    city_travel_cum: np.ndarray
    # customers
    cust_city: np.ndarray
    cust_lat: np.ndarray
    cust_lon: np.ndarray
    cust_rate: np.ndarray
    cust_ecom: np.ndarray
    cust_atm: np.ndarray
    cust_scale: np.ndarray
    cust_shift: np.ndarray
    cust_card_start: np.ndarray
    cust_n_cards: np.ndarray
    cust_dev_start: np.ndarray
    cust_n_dev: np.ndarray
    cust_ip_start: np.ndarray
    cust_n_ip: np.ndarray
    cust_regular: np.ndarray  # (C, 4) pos terminal indices
    # cards
    card_customer: np.ndarray
    card_bin: np.ndarray
    # merchants
    merch_mcc: np.ndarray  # index into MCCS (+ATM)
    merch_country: np.ndarray
    merch_city: np.ndarray  # -1 online
    merch_kind: np.ndarray
    merch_moto: np.ndarray  # share of mail/phone orders (online merchants)
    merch_open: np.ndarray  # day the merchant opens (-1: collusive, opens when used)
    # terminals
    term_merchant: np.ndarray
    term_kind: np.ndarray
    term_city: np.ndarray
    term_lat: np.ndarray
    term_lon: np.ndarray
    pos_city_start: np.ndarray
    pos_city_end: np.ndarray
    pos_cum: np.ndarray  # cumulative popularity over all pos terminals (city-sorted)
    atm_city_start: np.ndarray
    atm_city_end: np.ndarray
    ecom_terms: np.ndarray
    ecom_cum: np.ndarray
    pos_pop: np.ndarray  # popularity of each pos terminal
    pos_open: np.ndarray  # day each pos terminal opens (0: before the stream)
    ecom_pop: np.ndarray
    ecom_open: np.ndarray
    bustout_terms: np.ndarray
    # device and IP pools (index ranges)
    n_cust_dev: int
    other_dev: tuple[int, int]
    fraud_dev: tuple[int, int]
    ring_dev: tuple[int, int]  # card-testing rings reuse a few devices
    n_cust_ip: int
    pool_ip_country_start: np.ndarray
    pool_ip_country_end: np.ndarray
    fraud_ip: tuple[int, int]
    # strings
    s_card: pa.Array
    s_customer: pa.Array
    s_merchant: pa.Array
    s_terminal: pa.Array
    s_device: pa.Array
    s_ip: pa.Array

    @property
    def n_customers(self) -> int:
        return len(self.cust_city)

    def set_day(self, day: int) -> None:
        """Shops opened by ``day`` are in business (new merchants keep opening)."""
        self.pos_cum = np.cumsum(self.pos_pop * (self.pos_open <= day))
        self.ecom_cum = np.cumsum(self.ecom_pop * (self.ecom_open <= day))
        self.day = day

    day: int = 0


def build_world(cfg: SimulationConfig) -> World:
    """Draw every entity from the seed (independent of the transaction stream)."""
    rng = np.random.default_rng([cfg.seed, 0xE17])
    C = cfg.customers
    n_city = len(CITIES)
    city_country = np.array([c[1] for c in CITIES], dtype=np.int16)
    city_lat = np.array([c[2] for c in CITIES])
    city_lon = np.array([c[3] for c in CITIES])
    home_w = np.array([c[4] for c in CITIES])
    travel_w = np.array([c[5] for c in CITIES])

    # -- customers ------------------------------------------------------------
    cust_city = rng.choice(n_city, size=C, p=home_w / home_w.sum()).astype(np.int16)
    cust_lat = city_lat[cust_city] + rng.normal(0, 0.06, C)
    cust_lon = city_lon[cust_city] + rng.normal(0, 0.09, C)
    # activity: lognormal with mean 1 (a few heavy users)
    sig = 0.7
    cust_rate = cfg.tx_per_customer_day * rng.lognormal(-sig * sig / 2, sig, C)
    cust_ecom = rng.beta(2.0, 5.0, C)
    cust_atm = rng.beta(1.2, 25.0, C)
    cust_scale = rng.lognormal(0.0, 0.35, C)
    cust_shift = rng.normal(0.0, 1.2, C)
    n_cards = 1 + rng.binomial(2, 0.2, C)
    n_dev = 1 + (rng.random(C) < 0.4)
    n_ip = 1 + (rng.random(C) < 0.5)
    card_start = np.concatenate([[0], np.cumsum(n_cards)[:-1]])
    dev_start = np.concatenate([[0], np.cumsum(n_dev)[:-1]])
    ip_start = np.concatenate([[0], np.cumsum(n_ip)[:-1]])
    K = int(n_cards.sum())
    card_customer = np.repeat(np.arange(C, dtype=np.int32), n_cards)
    card_bin = rng.integers(0, len(BINS), K).astype(np.int8)

    # -- merchants and terminals ---------------------------------------------
    pos_w = np.array([m[3] for m in MCCS])
    ecom_w = np.array([m[4] for m in MCCS])
    city_share = home_w + 0.6 * travel_w  # every city needs shops (tourists, fraudsters)
    n_pos_m = max(400, C // 10)
    # shops per city by population and visitors, at least 8 everywhere
    counts = np.bincount(
        rng.choice(n_city, size=n_pos_m, p=city_share / city_share.sum()), minlength=n_city
    )
    counts = np.maximum(counts, 8)
    pos_m_city = np.repeat(np.arange(n_city), counts)
    n_pos_m = len(pos_m_city)
    pos_m_mcc = rng.choice(len(MCCS), size=n_pos_m, p=pos_w / pos_w.sum())
    n_atm_m = n_city  # one ATM network per city
    n_ecom_m = max(150, C // 60)
    ecom_m_mcc = rng.choice(len(MCCS), size=n_ecom_m, p=ecom_w / ecom_w.sum())
    ecom_m_country = np.where(
        rng.random(n_ecom_m) < 0.75,
        rng.integers(0, HOME_COUNTRIES, n_ecom_m),
        rng.integers(HOME_COUNTRIES, len(COUNTRIES), n_ecom_m),
    )
    total_tx = C * cfg.tx_per_customer_day * cfg.days
    n_bust = int(max(4, np.ceil(total_tx * max(cfg.fraud_rate, 0.001) * 0.5 * 3 / 40))) + 2
    bust_mcc = rng.choice(ONLINE_RISKY_MCC_IDX, size=n_bust)

    merch_mcc = np.concatenate([pos_m_mcc, np.full(n_atm_m, ATM_MCC_IDX), ecom_m_mcc, bust_mcc])
    merch_city = np.concatenate([pos_m_city, np.arange(n_city), np.full(n_ecom_m + n_bust, -1)])
    merch_country = np.concatenate(
        [
            city_country[pos_m_city],
            city_country,
            ecom_m_country,
            rng.integers(0, HOME_COUNTRIES, n_bust),
        ]
    ).astype(np.int16)
    merch_kind = np.concatenate(
        [
            np.full(n_pos_m, K_POS),
            np.full(n_atm_m, K_ATM),
            np.full(n_ecom_m, K_ECOM),
            np.full(n_bust, K_BUSTOUT),
        ]
    ).astype(np.int8)
    merch_moto = np.zeros(len(merch_mcc))
    merch_moto[np.isin(merch_mcc, MOTO_MCC_IDX) & (merch_kind == K_ECOM)] = 0.3
    M = len(merch_mcc)
    m_lat = np.full(M, np.nan)
    m_lon = np.full(M, np.nan)
    phys = merch_city >= 0
    m_lat[phys] = city_lat[merch_city[phys]] + rng.normal(0, 0.07, phys.sum())
    m_lon[phys] = city_lon[merch_city[phys]] + rng.normal(0, 0.1, phys.sum())

    # terminals: pos (city-sorted), atm (city-sorted), ecom, bustout (one virtual each)
    pos_n_t = 1 + np.minimum(rng.poisson(0.6, n_pos_m), 3)
    pos_t_m = np.repeat(np.arange(n_pos_m), pos_n_t)
    atm_counts = np.maximum(4, (counts // 6)).astype(np.int64)
    atm_t_m = np.repeat(n_pos_m + np.arange(n_city), atm_counts)
    ecom_t_m = n_pos_m + n_atm_m + np.arange(n_ecom_m)
    bust_t_m = n_pos_m + n_atm_m + n_ecom_m + np.arange(n_bust)
    term_merchant = np.concatenate([pos_t_m, atm_t_m, ecom_t_m, bust_t_m]).astype(np.int32)
    T = len(term_merchant)
    term_kind = merch_kind[term_merchant]
    term_city = merch_city[term_merchant].astype(np.int16)
    term_lat = m_lat[term_merchant].copy()
    term_lon = m_lon[term_merchant].copy()
    atm = term_kind == K_ATM  # ATMs spread over the city
    term_lat[atm] = city_lat[term_city[atm]] + rng.normal(0, 0.06, atm.sum())
    term_lon[atm] = city_lon[term_city[atm]] + rng.normal(0, 0.09, atm.sum())
    term_lat = np.round(term_lat, 5)
    term_lon = np.round(term_lon, 5)

    n_pos_t = len(pos_t_m)
    # ~12% of shops open during the stream (never a city's first: every city keeps shops)
    first_in_city = np.concatenate([[True], pos_m_city[1:] != pos_m_city[:-1]])
    m_open = np.where(rng.random(n_pos_m) < 0.12, rng.integers(1, max(cfg.days, 2), n_pos_m), 0)
    m_open[first_in_city] = 0
    pos_open = m_open[pos_t_m]
    pos_pop = _pareto_weights(rng, n_pos_m)[pos_t_m] / pos_n_t[pos_t_m]
    pos_cum = np.cumsum(pos_pop * (pos_open == 0))
    pos_city = term_city[:n_pos_t]
    pos_city_start = np.searchsorted(pos_city, np.arange(n_city), side="left")
    pos_city_end = np.searchsorted(pos_city, np.arange(n_city), side="right")
    atm_city = term_city[n_pos_t : n_pos_t + len(atm_t_m)]
    atm_city_start = n_pos_t + np.searchsorted(atm_city, np.arange(n_city), side="left")
    atm_city_end = n_pos_t + np.searchsorted(atm_city, np.arange(n_city), side="right")
    ecom_terms = np.arange(n_pos_t + len(atm_t_m), n_pos_t + len(atm_t_m) + n_ecom_m)
    ecom_pop = _pareto_weights(rng, n_ecom_m, 1.0)
    ecom_open = np.where(
        rng.random(n_ecom_m) < 0.15, rng.integers(1, max(cfg.days, 2), n_ecom_m), 0
    )
    ecom_open[0] = 0
    ecom_cum = np.cumsum(ecom_pop * (ecom_open == 0))
    bustout_terms = np.arange(T - n_bust, T)

    # regular shops of each customer: 4 popular pos terminals of the home city
    world_partial = (pos_cum, pos_city_start, pos_city_end)
    cust_regular = np.stack(
        [sample_pos(rng, world_partial, cust_city) for _ in range(4)], axis=1
    ).astype(np.int32)

    # -- devices and IPs -----------------------------------------------------------
    n_cust_dev = int(n_dev.sum())
    n_other = max(2_000, C // 2)
    n_fraud_dev = max(3_000, C // 5)
    n_ring = 400  # devices of card-testing rings, each reused across victims
    other_dev = (n_cust_dev, n_cust_dev + n_other)
    fraud_dev = (other_dev[1], other_dev[1] + n_fraud_dev)
    ring_dev = (fraud_dev[1], fraud_dev[1] + n_ring)
    n_dev_total = ring_dev[1]

    n_cust_ip = int(n_ip.sum())
    ip_country = np.repeat(city_country[cust_city], n_ip)
    pool_per_country = max(500, C // 40)
    pool_country = np.repeat(np.arange(HOME_COUNTRIES), pool_per_country)
    n_fraud_ip = max(2_000, C // 20)
    fraud_country = rng.integers(HOME_COUNTRIES, len(COUNTRIES), n_fraud_ip)
    all_ip_country = np.concatenate([ip_country, pool_country, fraud_country])
    first = np.empty(len(all_ip_country), dtype=np.uint32)
    for ci, (_, _, _, octets) in enumerate(COUNTRIES):
        sel = all_ip_country == ci
        first[sel] = np.asarray(octets, dtype=np.uint32)[rng.integers(0, len(octets), sel.sum())]
    ips = (first << np.uint32(24)) | rng.integers(1 << 8, 1 << 24, len(first), dtype=np.uint32)
    pool_start = n_cust_ip + np.arange(HOME_COUNTRIES) * pool_per_country
    pool_ip_country_start = pool_start
    pool_ip_country_end = pool_start + pool_per_country
    fraud_ip = (n_cust_ip + HOME_COUNTRIES * pool_per_country, len(ips))

    # -- string ids (tokens look random; never a card number) --------------------------
    tag = np.uint64(cfg.seed & 0xFFFFFFFF) << np.uint64(32)
    s_card = hex_strings("tok_", splitmix64(tag ^ np.arange(K, dtype=np.uint64)), 16)
    s_device = hex_strings(
        "dev_",
        splitmix64(tag ^ (np.uint64(1) << np.uint64(31)) ^ np.arange(n_dev_total, dtype=np.uint64)),
        12,
    )
    return World(
        city_lat=city_lat,
        city_lon=city_lon,
        city_country=city_country,
        city_travel_cum=np.cumsum(travel_w) / travel_w.sum(),
        cust_city=cust_city,
        cust_lat=cust_lat,
        cust_lon=cust_lon,
        cust_rate=cust_rate,
        cust_ecom=cust_ecom,
        cust_atm=cust_atm,
        cust_scale=cust_scale,
        cust_shift=cust_shift,
        cust_card_start=card_start.astype(np.int64),
        cust_n_cards=n_cards,
        cust_dev_start=dev_start.astype(np.int64),
        cust_n_dev=n_dev.astype(np.int64),
        cust_ip_start=ip_start.astype(np.int64),
        cust_n_ip=n_ip.astype(np.int64),
        cust_regular=cust_regular,
        card_customer=card_customer,
        card_bin=card_bin,
        merch_mcc=merch_mcc.astype(np.int16),
        merch_country=merch_country,
        merch_city=merch_city.astype(np.int16),
        merch_kind=merch_kind,
        merch_moto=merch_moto,
        merch_open=np.concatenate(
            [m_open, np.zeros(n_atm_m), ecom_open, np.full(n_bust, -1)]
        ).astype(np.int32),
        term_merchant=term_merchant,
        term_kind=term_kind,
        term_city=term_city,
        term_lat=term_lat,
        term_lon=term_lon,
        pos_city_start=pos_city_start,
        pos_city_end=pos_city_end,
        pos_cum=pos_cum,
        atm_city_start=atm_city_start,
        atm_city_end=atm_city_end,
        ecom_terms=ecom_terms,
        ecom_cum=ecom_cum,
        pos_pop=pos_pop,
        pos_open=pos_open.astype(np.int32),
        ecom_pop=ecom_pop,
        ecom_open=ecom_open.astype(np.int32),
        bustout_terms=bustout_terms,
        n_cust_dev=n_cust_dev,
        other_dev=other_dev,
        fraud_dev=fraud_dev,
        ring_dev=ring_dev,
        n_cust_ip=n_cust_ip,
        pool_ip_country_start=pool_ip_country_start,
        pool_ip_country_end=pool_ip_country_end,
        fraud_ip=fraud_ip,
        s_card=s_card,
        s_customer=dec_strings("c", np.arange(C), 8),
        s_merchant=dec_strings("m", np.arange(M), 7),
        s_terminal=dec_strings("t", np.arange(T), 8),
        s_device=s_device,
        s_ip=ipv4_strings(ips),
    )


def sample_pos(
    rng: np.random.Generator,
    world: World | tuple[np.ndarray, np.ndarray, np.ndarray],
    city: np.ndarray,
) -> np.ndarray:
    """One pos terminal per entry of ``city``, by popularity within that city."""
    if isinstance(world, World):
        cum, start, end = world.pos_cum, world.pos_city_start, world.pos_city_end
    else:
        cum, start, end = world
    city = np.asarray(city, dtype=np.int64)
    s, e = start[city], end[city]
    base = np.where(s > 0, cum[np.maximum(s - 1, 0)], 0.0)
    top = cum[e - 1]
    target = base + rng.random(len(city)) * (top - base)
    idx = np.searchsorted(cum, target, side="right")
    return np.clip(idx, s, e - 1)


def sample_atm(rng: np.random.Generator, world: World, city: np.ndarray) -> np.ndarray:
    """One ATM terminal per entry of ``city``, uniformly within the city."""
    city = np.asarray(city, dtype=np.int64)
    s, e = world.atm_city_start[city], world.atm_city_end[city]
    return s + (rng.random(len(city)) * (e - s)).astype(np.int64)


def sample_ecom(rng: np.random.Generator, world: World, n: int) -> np.ndarray:
    """``n`` online merchants' terminals by (heavy-tailed) popularity."""
    cum = world.ecom_cum
    i = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
    return world.ecom_terms[np.minimum(i, len(cum) - 1)]


def sample_ecom_mcc(
    rng: np.random.Generator, world: World, mcc_idx: np.ndarray, n: int
) -> np.ndarray:
    """``n`` online terminals whose merchant's MCC is one of ``mcc_idx`` (uniformly)."""
    ok = np.isin(world.merch_mcc[world.term_merchant[world.ecom_terms]], mcc_idx)
    cand = world.ecom_terms[ok & (world.ecom_open <= world.day)]
    if len(cand) == 0:
        cand = world.ecom_terms
    return cand[rng.integers(0, len(cand), n)]


def random_other_city(
    rng: np.random.Generator, world: World, home: np.ndarray, far: bool
) -> np.ndarray:
    """A destination city per entry, never the home city; ``far``: another country."""
    n_city = len(world.city_lat)
    out = np.searchsorted(world.city_travel_cum, rng.random(len(home)), side="right")
    out = np.minimum(out, n_city - 1)
    for _ in range(8):  # resample the few that landed at home
        bad = out == home
        if far:
            bad |= world.city_country[out] == world.city_country[home]
        if not bad.any():
            break
        out[bad] = np.minimum(
            np.searchsorted(world.city_travel_cum, rng.random(bad.sum()), side="right"), n_city - 1
        )
    bad = out == home
    out[bad] = (home[bad] + 1 + rng.integers(0, n_city - 1, bad.sum())) % n_city
    return out.astype(np.int64)


# --- entity tables (written next to the transactions) ----------------------------------
def entity_tables(world: World) -> dict[str, pd.DataFrame]:
    """customers, cards, merchants, terminals as DataFrames (ground truth included)."""
    country = np.array([c[0] for c in COUNTRIES], dtype=object)
    currency = np.array([c[1] for c in COUNTRIES], dtype=object)
    city_name = np.array([c[0] for c in CITIES], dtype=object)
    customers = pd.DataFrame(
        {
            "customer_id": world.s_customer.to_pandas(),
            "home_city": city_name[world.cust_city],
            "home_country": country[world.city_country[world.cust_city]],
            "home_lat": np.round(world.cust_lat, 5),
            "home_lon": np.round(world.cust_lon, 5),
            "tx_per_day": np.round(world.cust_rate, 4),
            "ecom_share": np.round(world.cust_ecom, 4),
            "atm_share": np.round(world.cust_atm, 4),
            "amount_scale": np.round(world.cust_scale, 4),
            "n_cards": world.cust_n_cards.astype(np.int16),
            "n_devices": world.cust_n_dev.astype(np.int16),
        }
    )
    cards = pd.DataFrame(
        {
            "card_token": world.s_card.to_pandas(),
            "customer_id": world.s_customer.take(pa.array(world.card_customer)).to_pandas(),
            "card_bin": np.array(BINS, dtype=object)[world.card_bin],
        }
    )
    mcc = MCC_CODES[world.merch_mcc]
    kind_name = np.array(["pos", "atm", "ecom", "ecom"], dtype=object)
    merchants = pd.DataFrame(
        {
            "merchant_id": world.s_merchant.to_pandas(),
            "mcc": mcc,
            "country": country[world.merch_country],
            "currency": currency[world.merch_country],
            "city": np.where(
                world.merch_city >= 0, city_name[np.maximum(world.merch_city, 0)], None
            ),
            "kind": kind_name[world.merch_kind],
            "opened_day": world.merch_open,
            "collusive": world.merch_kind == K_BUSTOUT,
        }
    )
    m = world.term_merchant
    terminals = pd.DataFrame(
        {
            "terminal_id": world.s_terminal.to_pandas(),
            "merchant_id": world.s_merchant.take(pa.array(m)).to_pandas(),
            "kind": kind_name[world.term_kind],
            "lat": world.term_lat,
            "lon": world.term_lon,
            "country": country[world.merch_country[m]],
        }
    )
    return {"customers": customers, "cards": cards, "merchants": merchants, "terminals": terminals}


def scenario_code(name: str) -> int:
    return SCENARIO_NAMES.index(name)
