"""Exceptions raised by riskflow.

Every error subclasses :class:`RiskflowError` and, where a caller would catch a
built-in, that built-in too (``ValueError``, ``FileNotFoundError``, ...). Messages
say what was wrong, the value seen, and how to fix it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RiskflowError",
    "ConfigError",
    "SchemaError",
    "ValidationError",
    "MappingError",
    "BrokerError",
    "ArtifactError",
]


class RiskflowError(Exception):
    """Root of every exception riskflow raises on purpose."""


class ConfigError(RiskflowError, ValueError):
    """The configuration (riskflow.toml or RISKFLOW_* variables) is invalid."""


class SchemaError(RiskflowError, ValueError):
    """A table or record does not fit the canonical transaction schema."""


class ValidationError(SchemaError):
    """One transaction or label record is invalid.

    Parameters
    ----------
    field
        The offending field (``"<record>"`` when the record as a whole is bad).
    reason
        What is wrong and how to fix it.
    value
        The value seen, if any; card numbers are never put here raw.
    """

    def __init__(self, field: str, reason: str, value: Any = None) -> None:
        self.field = field
        self.reason = reason
        self.value = value
        shown = "" if value is None else f" Got {_preview(value)} instead."
        super().__init__(f"Invalid field {field!r}: {reason}.{shown}")

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-ready dict (what the dead-letter topic carries)."""
        return {"field": self.field, "reason": self.reason, "value": _preview(self.value)}


class MappingError(SchemaError):
    """A column mapping (TOML) is invalid or does not fit the data."""


class BrokerError(RiskflowError, RuntimeError):
    """Kafka could not be reached or refused an operation."""


class ArtifactError(RiskflowError, ValueError):
    """A model or policy artifact is missing, corrupted or incompatible."""


def _preview(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
