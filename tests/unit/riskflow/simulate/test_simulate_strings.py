from __future__ import annotations

import numpy as np

from riskflow.simulate._strings import dec_strings, hex_strings, ipv4_strings, splitmix64, take


def test_string_builders_match_python_formatting() -> None:
    rng = np.random.default_rng(0)
    v = rng.integers(0, 2**63, 500, dtype=np.uint64)
    assert hex_strings("tok_", v).to_pylist() == [f"tok_{int(x):016x}" for x in v]
    d = rng.integers(0, 10**8, 500)
    assert dec_strings("c", d, 8).to_pylist() == [f"c{int(x):08d}" for x in d]
    ip = rng.integers(0, 2**32, 50, dtype=np.uint64).astype(np.uint32)
    expect = [".".join(str((int(x) >> s) & 255) for s in (24, 16, 8, 0)) for x in ip]
    assert ipv4_strings(ip).to_pylist() == expect


def test_splitmix64_is_a_bijection_on_a_range() -> None:
    x = np.arange(200_000, dtype=np.uint64)
    assert len(np.unique(splitmix64(x))) == len(x)


def test_take_maps_negative_indices_to_null() -> None:
    import pyarrow as pa

    out = take(pa.array(["a", "b"]), np.array([1, -1, 0]))
    assert out.to_pylist() == ["b", None, "a"]
