"""riskflow: real-time financial risk scoring on Kafka.

Read first: :mod:`riskflow.schema` (what a transaction is),
:mod:`riskflow.config` (what can be configured), :mod:`riskflow.batch` (the
struct-of-arrays view every engine consumes), then the engines:
:mod:`riskflow.features`, :mod:`riskflow.models`, :mod:`riskflow.policies`,
:mod:`riskflow.streams`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
