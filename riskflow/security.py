"""Card numbers are secrets: tokenise them on the way in, never log them.

A token is ``tok_`` + the first 32 hex digits of HMAC-SHA256(key, PAN digits):
stable for one key (so per-card features work across files and streams), not
reversible without the key, and never a Luhn-valid number. The key comes from
``security.tokenisation_key`` (``RISKFLOW_SECURITY__TOKENISATION_KEY``).

>>> t = tokenise_pan("4111 1111 1111 1111", b"k")
>>> t.startswith("tok_"), len(t), t == tokenise_pan("4111111111111111", b"k")
(True, 36, True)
>>> mask_pan("4111111111111111")
'411111******1111'
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd

__all__ = ["tokenise_pan", "tokenise_column", "mask_pan", "card_bin"]


def _digits(pan: object) -> str:
    s = str(pan)
    if s.endswith(".0"):  # a numeric column read as float
        s = s[:-2]
    return "".join(ch for ch in s if ch.isdigit())


def tokenise_pan(pan: object, key: bytes) -> str:
    """Token for one card number (spaces and dashes ignored)."""
    digest = hmac.new(key, _digits(pan).encode(), hashlib.sha256).hexdigest()
    return "tok_" + digest[:32]


def tokenise_column(values: pd.Series, key: bytes) -> pd.Series:
    """Tokenise a column of card numbers; each distinct PAN is hashed once."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    tokens = np.array([tokenise_pan(u, key) for u in uniques] + [None], dtype=object)
    return pd.Series(tokens[codes], index=values.index, dtype=object)


def card_bin(values: pd.Series) -> pd.Series:
    """First six digits of each card number (the BIN is not secret under PCI DSS)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    bins = np.array([_digits(u)[:6] or None for u in uniques] + [None], dtype=object)
    return pd.Series(bins[codes], index=values.index, dtype=object)


def mask_pan(pan: object) -> str:
    """First six and last four digits, the rest starred: the most a log may show."""
    d = _digits(pan)
    return d[:6] + "*" * max(len(d) - 10, 0) + d[-4:] if len(d) > 10 else "*" * len(d)
