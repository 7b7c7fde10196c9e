"""Every kernel of the registry on every backend present, against its numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from registry import REGISTRY

from khal_runtime import testing
from khal_runtime.kernels import manifest


@pytest.mark.parametrize("case", REGISTRY, ids=[c.id for c in REGISTRY])
def test_kernel_matches_numpy(backend, case):
    rng = case.rng()
    for n in case.sizes:
        assert testing.check(case, backend, rng, n) == []


def test_every_kernel_has_a_case():
    compiled = set(manifest("shaders._generated")["kernels"])
    missing = compiled - {c.id for c in REGISTRY}
    assert not missing, f"kernels without a case in tests/cases: {sorted(missing)}"


ELEMENTWISE = [c for c in REGISTRY if c.id.split(".")[-1] in ("add_assign", "binary_op_i32_add", "binary_op_f32_max")]


@pytest.mark.parametrize("case", ELEMENTWISE, ids=[c.id for c in ELEMENTWISE])
@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 3000), seed=st.integers(0, 2**32 - 1))
def test_elementwise_any_size(backend, case, n, seed):
    assert testing.check(case, backend, np.random.default_rng(seed), n) == []
