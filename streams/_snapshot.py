"""Capturing state for a forked snapshot writer: no copy where the capture allows it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def uncopied(later: Callable[..., Any]) -> Any:
    """``later(copy_tables=False)`` where a capture takes that argument, else ``later()``.

    A forked writer serialises memory the fork froze, so copying the tables
    first only costs time; a scoring or engine without the argument copies.
    """
    try:
        takes = "copy_tables" in inspect.signature(later).parameters
    except (TypeError, ValueError):
        takes = False
    return later(copy_tables=False) if takes else later()
