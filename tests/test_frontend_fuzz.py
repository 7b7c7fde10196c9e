"""Random statements from a small grammar of kernel pieces: the front end compiles them or refuses them with a
located KernelCompileError, and never fails in any other way."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hatch_khal.frontend import KernelCompileError, compile_package

ATOMS = ["a[0]", "a[i]", "i", "n", "1", "-1", "1.5", "True", "u32(2)", "i32(3)", "f16(1.0)", "'s'", "(a[0], 1)",
         "global_id()", "global_id().x", "len(a)", "f32", "a", "t[0]", "t", "workgroup_size()", "2 ** 70", "0"]
BINARY = ["+", "-", "*", "/", "//", "%", "**", "<<", ">>", "&", "|", "^", "<", "==", "!=", "and", "or"]
CALLS = ["max({}, {})", "min({}, {})", "abs({})", "sqrt({})", "f32({})", "u32({})", "i32({})", "bitcast(u32, {})",
         "exp({})", "atomic_add(a, 0, {})", "clamp({}, {}, {})", "{} if {} else {}", "not {}", "-{}", "~{}",
         "({})", "{}[0]", "{}.x", "half_to_f32({})", "extract_bits({}, 0, 8)"]

expressions = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(BINARY), inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        st.tuples(st.sampled_from(CALLS), st.lists(inner, min_size=3, max_size=3)).map(
            lambda t: t[0].format(*t[1][:t[0].count("{}")]))),
    max_leaves=6)
STATEMENTS = ["x = {}", "a[i] = {}", "if {}:\n        a[0] = 1.0", "for j in range({}):\n        a[j] = 0.0",
              "while {}:\n        break", "x = {}\n    a[0] = x", "x: f32 = {}", "a[0] += {}", "t[i] = {}",
              "y, z = {}, {}", "require({})", "return {}", "if {}:\n        barrier()",
              "while {}:\n        barrier()\n        break", "if {}:\n        return\n    x = subgroup_add({})"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(template=st.sampled_from(STATEMENTS), parts=st.lists(expressions, min_size=2, max_size=2))
def test_the_front_end_never_crashes(tmp_path, template, parts):
    body = template.format(*parts[:template.count("{}")])
    source = ("from khal_runtime.lang import *\n\n@kernel(workgroup_size=(64,))\n"
              "def k(a: MutBuf[f32], n: u32):\n    t = shared(u32, 64)\n    i = global_id().x\n    " + body + "\n")
    (tmp_path / "fuzz").mkdir(exist_ok=True)
    (tmp_path / "fuzz" / "m.py").write_text(source)
    try:
        compile_package(tmp_path, "fuzz")
    except KernelCompileError as e:
        assert e.line >= 1 and e.path.endswith("m.py") and e.message
