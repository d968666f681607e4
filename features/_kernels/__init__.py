"""Compiled kernels of the feature engine (private; call :class:`riskflow.features.FeatureEngine`).

Kernels take contiguous arrays, scalars and named tuples of arrays only; no
dicts, logging, I/O or user-facing errors in here. JIT flags come from
:mod:`._jit`, the state/output layout from :mod:`._layout`.
"""
