"""State and output layout shared by the kernels and the Python layer (one source of truth).

Everything here is a plain int so numba freezes it into the compiled kernels
as a constant. Changing any of it changes the snapshot layout: bump
:data:`LAYOUT_VERSION` so an old snapshot is refused instead of misread.
"""

from __future__ import annotations

#: Bump on any change below (or to the meaning of a state array).
LAYOUT_VERSION = 3

#: Full entities, in state order. Each gets the same wide state row.
ENTITIES: tuple[str, ...] = ("card", "customer", "merchant", "terminal", "device", "ip", "bin")
NE = len(ENTITIES)
#: Entities a label is joined to (LabelBatch has exactly these keys), in this order.
LABEL_ENTITIES: tuple[str, ...] = ("card", "customer", "merchant", "terminal", "device", "ip")
NL = len(LABEL_ENTITIES)
#: Pair entities: (name, left, right). Narrow state rows in their own table.
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("card_merchant", "card", "merchant"),
    ("card_device", "card", "device"),
    ("card_ip", "card", "ip"),
)
NP = len(PAIRS)
#: Per full entity: the counterparty whose novelty / distinct count is tracked
#: (``cp``) and a second key whose novelty is tracked (``aux``).
COUNTERPARTY: dict[str, tuple[str, str]] = {
    "card": ("merchant", "country"),
    "customer": ("merchant", "device"),
    "merchant": ("card", "ip"),
    "terminal": ("card", "bin"),
    "device": ("card", "ip"),
    "ip": ("card", "device"),
    "bin": ("card", "merchant"),
}

#: Decayed windows per entity row (a window of 0 ms is unused).
NW = 4
#: Ring buffer of the last K events per entity (exact short windows, novelty).
#: 8 covers a card's day for almost every card and a card-testing burst's
#: first minute; counts from the ring are exact but capped at K.
K = 8
#: HyperLogLog registers per entity: 32 -> ~18% relative error, 32 bytes.
HLL_M = 32
HLL_BITS = 5  # log2(HLL_M)

# --- per-window outputs (6 per window, window w at w * W_OUT) ---
W_COUNT, W_SUM, W_MEAN, W_STD, W_Z, W_RATIO = range(6)
W_OUT = 6
# --- per-entity scalar outputs, after the NW window blocks ---
_B = NW * W_OUT
O_SECS_SINCE_LAST = _B + 0
O_AGE_DAYS = _B + 1
O_N_LIFETIME = _B + 2
O_CNT_1M = _B + 3
O_CNT_10M = _B + 4
O_CNT_1H = _B + 5
O_SUM_10M = _B + 6
O_MAX_24H = _B + 7
O_MIN_24H = _B + 8
O_DISTINCT_CP_24H = _B + 9
O_CP_NEW = _B + 10
O_AUX_NEW = _B + 11
O_HLL_CP = _B + 12
O_AMT_TO_LAST = _B + 13
O_MEAN_GAP = _B + 14
O_F7 = _B + 15
O_F30 = _B + 16
O_N30 = _B + 17
O_FRATE30 = _B + 18
O_DAYS_SINCE_FRAUD = _B + 19
O_FAMT30 = _B + 20
O_GEO_DIST = _B + 21
O_GEO_SPEED = _B + 22
O_GEO_CENTROID = _B + 23
O_MIX_SAME_CH = _B + 24
O_MIX_SAME_EM = _B + 25
O_MIX_ECOM = _B + 26
O_MIX_KEYED = _B + 27
NOUT_E = _B + 28
#: Entity outputs read from a scan of the ring (the rest of the ring block reads its newest entries only).
RING_SCAN_OUT: tuple[int, ...] = (
    O_CNT_1M,
    O_CNT_10M,
    O_CNT_1H,
    O_SUM_10M,
    O_MAX_24H,
    O_MIN_24H,
    O_DISTINCT_CP_24H,
    O_CP_NEW,
    O_AUX_NEW,
)
#: Entity outputs that read the ring's times and amounts.
RING_OUT: tuple[int, ...] = (*RING_SCAN_OUT, O_SECS_SINCE_LAST, O_AMT_TO_LAST, O_MEAN_GAP)
#: Entity outputs that read the counterparty / second keys (ring or HyperLogLog).
KEY_OUT: tuple[int, ...] = (O_DISTINCT_CP_24H, O_CP_NEW, O_AUX_NEW, O_HLL_CP)
#: Entity outputs that read no state past the ring's times and amounts (see the row
#: below). Not the scanned ones: the scan reads the ring's keys too.
NARROW_OUT: tuple[int, ...] = (
    *(w * W_OUT + o for w in range(NW) for o in range(W_OUT)),
    *(o for o in RING_OUT if o not in RING_SCAN_OUT),
    O_N_LIFETIME,
    O_AGE_DAYS,
)
#: Entity outputs of the delayed-label, geography and channel-mix blocks.
LABEL_OUT: tuple[int, ...] = (O_F7, O_F30, O_N30, O_FRATE30, O_DAYS_SINCE_FRAUD, O_FAMT30)
GEO_OUT: tuple[int, ...] = (O_GEO_DIST, O_GEO_SPEED, O_GEO_CENTROID)
MIX_OUT: tuple[int, ...] = (O_MIX_SAME_CH, O_MIX_SAME_EM, O_MIX_ECOM, O_MIX_KEYED)
#: ``active`` flags per entity or pair, a uint8 (0: not computed at all, so a subset
#: costs less): computed; keeps its ring of times and amounts; scans it; keeps
#: counterparty keys; reads state past the ring (an output not in :data:`NARROW_OUT`);
#: reads its label risk; its geography; its channel mix.
ACT_ON, ACT_RING, ACT_SCAN, ACT_KEYS, ACT_WIDE, ACT_LABEL, ACT_GEO, ACT_MIX = (
    1,
    2,
    4,
    8,
    16,
    32,
    64,
    128,
)

# --- pair outputs ---
P_N, P_FIRST, P_COUNT30, P_RATIO30, P_SECS, P_AGE = range(6)
NOUT_P = 6

# --- transaction-level / global outputs ---
T_NAMES: tuple[str, ...] = (
    "amount",
    "log_amount",
    "amount_is_integer",
    "amount_cents",
    "mcc",
    "mcc_prior_risk",
    "channel",
    "entry_mode",
    "hour",
    "hour_sin",
    "hour_cos",
    "day_of_week",
    "dow_sin",
    "dow_cos",
    "is_night",
    "is_weekend",
    "missing_customer",
    "missing_terminal",
    "missing_device",
    "missing_ip",
    "missing_mcc",
    "missing_channel",
    "missing_entry_mode",
    "missing_geo",
    "missing_bin",
    "missing_country",
    "mcc_fraud_rate_30d",
    "mcc_fraud_count_30d",
    "mcc_labelled_count_30d",
    "mcc_tx_count_24h",
    "is_card_present",
    "is_keyed_entry",
)
NT = len(T_NAMES)
(
    T_AMOUNT,
    T_LOG_AMOUNT,
    T_AMT_INT,
    T_AMT_CENTS,
    T_MCC,
    T_MCC_PRIOR,
    T_CHANNEL,
    T_ENTRY,
    T_HOUR,
    T_HOUR_SIN,
    T_HOUR_COS,
    T_DOW,
    T_DOW_SIN,
    T_DOW_COS,
    T_NIGHT,
    T_WEEKEND,
    T_MISS_CUSTOMER,
    T_MISS_TERMINAL,
    T_MISS_DEVICE,
    T_MISS_IP,
    T_MISS_MCC,
    T_MISS_CHANNEL,
    T_MISS_ENTRY,
    T_MISS_GEO,
    T_MISS_BIN,
    T_MISS_COUNTRY,
    T_MCC_FRATE,
    T_MCC_F30,
    T_MCC_N30,
    T_MCC_CNT24,
    T_CARD_PRESENT,
    T_KEYED,
) = range(NT)
#: Transaction outputs from the MCC's label risk, which labels reach through the
#: merchant's last MCC: selecting one keeps the merchant's state too.
T_MCC_LABEL_OUT: tuple[int, ...] = (T_MCC_FRATE, T_MCC_F30, T_MCC_N30)

# --- state row widths ---
GEO_W = 6  # prev_lat, prev_lon, prev_ts (ms as float), centroid weight, weighted lat, weighted lon
MIX_W = 11  # decayed counts per channel code (5) then per entry-mode code (6)
N_CHANNELS = 5
N_ENTRY = 6
LAB_W = 6  # fraud 7d, fraud 30d, labelled 30d, fraud amount 30d, last fraud time, label clock
L_F7, L_F30, L_N30, L_FAMT30, L_LAST_FRAUD, L_T = range(LAB_W)
PAIR_W = 3  # decayed count 30d, decayed amount sum 30d, lifetime count
N_MCC = 10_000
MCC_W = 5  # fraud 30d, labelled 30d, label clock, tx count 24h, tx clock

#: Time constants, ms.
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
#: Decay constants of the label, mix and pair families (window = 1/e time).
TAU_7D = 7.0 * DAY
TAU_30D = 30.0 * DAY
TAU_24H = 1.0 * DAY
#: Fraud-rate smoothing: prior rate and its weight in pseudo-labels.
RATE_PRIOR = 0.01
RATE_STRENGTH = 2.0

# --- packed entity row: one contiguous row of 64-bit words per entity, read
# as float64 (``f``) or uint64 (``u``) views of the same buffer, so one entity
# access touches ~10 adjacent cache lines instead of 15 scattered arrays.
# Times are float64 ms (exact below 2**53 ms, i.e. for 285,000 years).
R_LAST = 0  # last event (tx or label), for the TTL
R_FIRST = 1  # first seen
R_AGG_T = 2  # time the decayed aggregates refer to
R_RING_N = 3  # events since first seen
R_MCC = 4  # last MCC seen (-1 none)
R_AGG = 5  # 3 * NW: decayed count, sum, sum of squares per window
R_RTS = R_AGG + 3 * NW  # K ring timestamps
R_RAMT = R_RTS + K  # K ring amounts
R_RCP = R_RAMT + K  # K ring counterparty keys (uint64 view)
R_RAUX = R_RCP + K  # K ring second keys (uint64 view)
R_HLL = R_RAUX + K  # HLL_M one-byte registers packed 8 per word (uint64 view)
R_HLL_SUM = R_HLL + HLL_M // 8  # running sum of 2**-register (O(1) estimates)
R_HLL_ZEROS = R_HLL_SUM + 1  # registers still 0
R_GEO = R_HLL_ZEROS + 1
R_MIX = R_GEO + GEO_W
R_LAB = R_MIX + MIX_W
ROW_W = R_LAB + LAB_W
# --- pair row (float64)
Q_LAST, Q_FIRST, Q_C30, Q_S30, Q_N = range(5)
PROW_W = 5
