"""Rendered kernels run for real and compared with numpy: GLSL on the WebGPU device (lavapipe on a machine
without a GPU: subgroups of 8) and CUDA through the driver API where a GPU is present (warps of 32). A GPU host
without the toolchain wheels reads SPIR-V and PTX compiled elsewhere from $KHAL_TEST_ARTIFACTS (see
test_render_kit.compiled)."""

from __future__ import annotations

import numpy as np
import pytest
import render_kernels_programs as programs
import render_kernels_rules as rules
import test_render_kit as kit

from khal_runtime import ir

rng = np.random.default_rng(7)


@pytest.fixture(params=[pytest.param("webgpu", marks=pytest.mark.webgpu), pytest.param("cuda", marks=pytest.mark.cuda)])
def run(request):
    return kit.run_webgpu if request.param == "webgpu" else kit.run_cuda


def test_add_assign(run):
    a, b = rng.standard_normal(1000).astype(np.float32), rng.standard_normal(1000).astype(np.float32)
    out = run(programs.add_assign(), {"a": a, "b": b}, (16, 1, 1))
    np.testing.assert_array_equal(out["a"], a + b)


@pytest.mark.parametrize("t", ["u32", "f32"])
def test_workgroup_reduction(run, t):
    x = rng.integers(0, 1000, 1000).astype(np.uint32) if t == "u32" else rng.random(1000).astype(np.float32)
    out = run(programs.reduce_sum(t), {"x": x, "out": np.zeros(1, x.dtype)}, (16, 1, 1))
    np.testing.assert_allclose(out["out"][0], x.sum(dtype=np.float64), rtol=1e-5)


def test_tiled_matmul(run):
    m, n, k = 13, 11, 19
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    out = run(programs.matmul(), {"a": a, "b": b, "c": np.zeros(m * n, np.float32)}, (2, 2, 1),
                  {"m": m, "n": n, "k": k})
    np.testing.assert_allclose(out["c"].reshape(m, n), a @ b, rtol=1e-5, atol=1e-5)


def test_subgroup_reduction_and_scans(run):
    x = rng.integers(0, 100, 200).astype(np.uint32)
    zeros = np.zeros(200, np.uint32)
    out = run(programs.subgroup_scan(), {"x": x, "out": np.zeros(3, np.uint32), "inclusive": zeros,
                                         "exclusive": zeros, "first": zeros}, (4, 1, 1))
    size = int(out["out"][1])
    assert out["out"][0] == x.sum() and out["out"][2] == 64 // size
    padded = np.concatenate([x, np.zeros(256 - 200, np.uint32)]).reshape(-1, size)
    inclusive = np.cumsum(padded, axis=1).reshape(-1)[:200]
    np.testing.assert_array_equal(out["inclusive"], inclusive)
    np.testing.assert_array_equal(out["exclusive"], inclusive - x)
    lane = np.arange(200)
    np.testing.assert_array_equal(out["first"], padded[:, 0].repeat(size)[:200] + (lane % 64) // size * 1000)


def test_f16_arithmetic_rounds_after_each_operation(run):
    x = (rng.standard_normal(256) * 4).astype(np.float16)
    w = rng.standard_normal(256).astype(np.float32)
    out = run(programs.f16_math(), {"x": x, "y": np.zeros(256, np.float16), "w": w,
                                    "wide": np.zeros(256, np.float32)}, (4, 1, 1))
    h = x
    np.testing.assert_array_equal(out["y"], (h + np.float16(1.5)) * h * (h - np.float16(3.0)))
    wide = (h * np.float16(0.1)).astype(np.float32) + w.astype(np.float16)
    if run is kit.run_cuda:
        np.testing.assert_array_equal(out["wide"], wide)
    else:   # f16 read back as f32 at once may skip its rounding on Vulkan (NVIDIA's driver does; lavapipe does not)
        np.testing.assert_allclose(out["wide"], wide, atol=2.0**-11 * (np.abs(h) + np.abs(w)).max())


def test_unpack_words_and_half_conversions(run):
    words = rng.integers(0, 2**32, 64, dtype=np.uint64).astype(np.uint32)
    words[:4] = [0x7C00_3C00, 0xFC00_0001, 0x7E00_8000, 0x0400_03FF]      # inf/1, -inf/denormal, nan/-0, normals
    floats = rng.standard_normal(64).astype(np.float32)
    # ties at f16 precision (round to even), overflow, NaN, f16 denormals
    floats[:8] = [1 + 2**-11, 1 + 3 * 2**-11, 65520.0, -1e9, np.nan, 2**-20, 2**-25, -0.0]
    out = run(programs.unpack_words(), {"words": words, "out": np.zeros(256, np.float32), "floats": floats,
                                        "packed": np.zeros(64, np.uint32)}, (1, 1, 1))
    halves = words.view(np.float16).reshape(64, 2).astype(np.float32)
    got = out["out"].reshape(64, 4)
    np.testing.assert_array_equal(got[:, :2], halves)
    np.testing.assert_array_equal(got[:, 2], ((words >> 4) & 15) + ((words >> 28) & 15) * 100.0)
    np.testing.assert_array_equal(got[:, 3], ((words >> 8) & 255).astype(np.uint8).view(np.int8))
    with np.errstate(over="ignore"):
        expected = floats.astype(np.float16).view(np.uint16).astype(np.uint32)
    nan = np.isnan(floats)
    np.testing.assert_array_equal(out["packed"][~nan], expected[~nan])
    assert (out["packed"][nan] & 0x7C00 == 0x7C00).all() and (out["packed"][nan] & 0x3FF).all()


def test_i64_u64_f64(run):
    l = rng.integers(-2**62, 2**62, 64)
    d = rng.standard_normal(64) * 1e6
    u = rng.integers(0, 2**63, 64).astype(np.uint64) * 2
    out = run(programs.wide_math(), {"l": l, "d": d, "u": u}, (1, 1, 1))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out["l"], l * 3 - (l >> 2) + d.astype(np.int64) + l // 7 + l % 5)
    np.testing.assert_allclose(out["d"], d * 0.5 + l.astype(np.float64) + np.sqrt(np.abs(d)) + np.floor(d / 3),
                               rtol=1e-15)
    i = np.arange(64, dtype=np.uint64)
    expected = (u >> np.uint64(33)) | (i << np.uint64(40)) | (
        (l.view(np.uint64) & np.uint64(255)) + d.view(np.uint64) % np.uint64(1000))
    np.testing.assert_array_equal(out["u"], expected)


def test_helpers_with_early_returns(run):
    x = np.arange(10, dtype=np.float32) - 3
    y = np.full(12, 99, np.float32)
    out = run(rules.helpers(), {"x": x, "y": y}, (1, 1, 1), {"scale": 2.0})
    v = x[np.minimum(np.arange(12) + 1, 9)] * 2
    np.testing.assert_array_equal(out["y"], np.where(v < 0, 99, v))


def test_loops(run):
    def reference(i):
        acc, k = 0, 0
        while k < 20:
            if k % 3 != 0:
                if acc > i * 4:
                    break
                acc += k
            k += 1
        last = k
        for k in range(10, 0, -2):
            acc -= k
        k = 0       # the loop variable after the loop: the first value that failed the test
        j = 10
        while j > 0:
            j -= 3
            if j == 4:
                continue
            acc = acc * 2 - j
        return acc * 100 + last + k
    out = run(rules.loops(), {"out": np.zeros(100, np.int32)}, (2, 1, 1))
    np.testing.assert_array_equal(out["out"], [reference(i) for i in range(100)])


def test_floordiv_and_mod_of_negative_numbers(run):
    a = np.array([-7, 7, -7, 7, -6, 6, 0, -1, 2**31 - 1, -2**31, -2**31 + 1, 5, -5, 1], np.int32)
    b = np.array([2, -2, -2, 2, 3, -3, -5, 3, -2, 3, 2**31 - 1, 7, 7, -1], np.int32)
    zi, zf = np.zeros(len(a), np.int32), np.zeros(len(a), np.float32)
    out = run(rules.division(), {"a": a, "b": b, "q": zi, "r": zi, "uq": zi.view(np.uint32),
                                 "ur": zi.view(np.uint32), "fq": zf, "fr": zf}, (1, 1, 1))
    np.testing.assert_array_equal(out["q"], a // b)
    np.testing.assert_array_equal(out["r"], a % b)
    np.testing.assert_array_equal(out["uq"], a.view(np.uint32) // b.view(np.uint32))
    np.testing.assert_array_equal(out["ur"], a.view(np.uint32) % b.view(np.uint32))
    fa, fb = a.astype(np.float32), b.astype(np.float32)
    np.testing.assert_allclose(out["fq"], np.floor(fa / fb))
    fr = fa - fb * np.floor(fa / fb)
    if run is kit.run_cuda:     # CUDA computes the IR's formula unfused; GLSL's mod may fuse it (IR.md, Targets)
        np.testing.assert_array_equal(out["fr"], fr)
    else:
        assert (np.abs(out["fr"] - fr) <= np.abs(fa) * 2.0**-23).all()


def test_shift_amounts_wrap(run):
    x = np.array([1, -1, -8, 12345678, -2**31, 7, 3, -3], np.int32)
    s = np.array([33, 31, 1, 64, 0, 100, 32, 63], np.uint32)
    z = np.zeros(len(x), np.int32)
    out = run(rules.shifts(), {"x": x, "s": s, "shl": z, "shr": z, "ushr": z.view(np.uint32),
                               "wide": z.astype(np.int64), "fixed": z}, (1, 1, 1))
    s32, s64 = (s % 32).astype(np.int32), (s % 64).astype(np.int64)
    np.testing.assert_array_equal(out["shl"], (x.astype(np.int64) << s32).astype(np.int32))
    np.testing.assert_array_equal(out["shr"], x >> s32)
    np.testing.assert_array_equal(out["ushr"], x.view(np.uint32) >> s32.astype(np.uint32))
    np.testing.assert_array_equal(out["wide"], (x.astype(np.int64) << s64) >> 3)
    np.testing.assert_array_equal(out["fixed"], (x << 1) + (x >> 1))


@pytest.mark.webgpu
@pytest.mark.parametrize("folded", [False, True])
def test_folded_grid(folded):
    """Logical grid of 10 workgroups, dispatched as (4, 1, 3) with fold width 4 the way the runtime folds grids of
    more than 65,535 workgroups: workgroups 10 and 11 must do nothing."""
    arrays = {"out": np.zeros(12, np.uint32), "gid": np.zeros(48, np.uint32)}
    out = kit.run_webgpu(rules.grid_ids(), arrays, (10, 1, 1), physical=(4, 1, 3) if folded else None,
                         fold=4 * folded)
    np.testing.assert_array_equal(out["out"], [w * 100 + 10 for w in range(10)] + [0, 0])
    np.testing.assert_array_equal(out["gid"], list(range(1, 41)) + [0] * 8)


def test_literals_round_trip(run):
    out = run(rules.literals(), {"f": np.zeros(len(rules.LITERALS_F32), np.float32),
                                 "d": np.zeros(len(rules.LITERALS_F64)), "l": np.zeros(4, np.int64),
                                 "u": np.zeros(2, np.uint64), "i": np.zeros(2, np.int32),
                                 "h": np.zeros(4, np.float16)}, (1, 1, 1))
    np.testing.assert_array_equal(out["f"].view(np.uint32), np.array(rules.LITERALS_F32, np.float32).view(np.uint32))
    expected = np.array(rules.LITERALS_F64)
    nan = np.isnan(expected)                    # NaN payload bits are unspecified (NVIDIA sets all of them)
    assert np.isnan(out["d"][nan]).all()
    np.testing.assert_array_equal(out["d"][~nan].view(np.uint64), expected[~nan].view(np.uint64))
    np.testing.assert_array_equal(out["l"], rules.LITERALS_I64)
    np.testing.assert_array_equal(out["u"], [2**64 - 1, 2**63])
    np.testing.assert_array_equal(out["i"], [-2**31, -5 * -1])
    np.testing.assert_array_equal(out["h"], np.array([0.1, 65504, -np.inf, 6e-8], np.float16))


def test_scalar_and_struct_parameters(run):
    shape = {"rows": 7, "scale": 0.1, "flip": 1, "bias": 2.5}
    out = run(rules.parameters(), {"out": np.zeros(8)}, (1, 1, 1),
              {"on": 0, "offset": -3, "shape": shape, "big": 1e300})
    np.testing.assert_array_equal(out["out"], [-3, 7, 0.1, 1, 2.5, -1, 1e300, 7 * 0.1])


def test_private_arrays_start_at_zero(run):
    out = run(rules.private_arrays(), {"out": np.zeros(64, np.uint32)}, (1, 1, 1))
    expected = []
    for i in range(64):
        hist = [0] * 4
        for k in range(i % 5):
            hist[k % 4] += k + 1
        expected.append(hist[0] + hist[1] * 10 + hist[2] * 100 + hist[3] * 1000)
    np.testing.assert_array_equal(out["out"], expected)


@pytest.mark.parametrize("space", ["storage", "shared"])
def test_atomics(run, space):
    arrays = {"ucells": np.zeros(10, np.uint32)}
    if space == "storage":
        arrays["cells"] = np.zeros(9, np.int32)
    out = run(rules.atomics(space), arrays, (1, 1, 1))
    cells = out["cells"] if space == "storage" else out["ucells"][1:].view(np.int32)
    v = np.arange(32, dtype=np.int32) - 3
    assert list(cells[:7]) == [v.sum(), -v.sum(), min(0, v.min()), max(0, v.max()), 0,
                               np.bitwise_or.reduce(v), np.bitwise_xor.reduce(v)]
    assert cells[7] in v and 1 <= cells[8] <= 32 and out["ucells"][0] == 31


def test_declarations_keep_values_across_iterations(run):
    out = run(rules.declarations(), {"out": np.zeros(64, np.uint32)}, (1, 1, 1))
    expected = []
    for i in range(64):
        x = w = 0
        for k in range(8):
            x = k if k == i % 8 else x
            w += x * 2
        expected.append(x + (1 if i > 3 else 2) + w)
    np.testing.assert_array_equal(out["out"], expected)


def test_conversions_and_comparisons(run):
    x = np.array([-1, 5, -2**31, 2**31 - 1, 16777217, -7, 0, 3], np.int32)
    f = np.array([-2.7, 2.7, 1e-3, np.nan, 65519.0, -0.0, 1.0 + 2**-11, -np.inf], np.float32)
    l = np.array([2**40 + 5, -2**40 - 1, 2**53 + 1, -1, 0, 2**63 - 1, 123456789012, -3], np.int64)
    z = lambda t: np.zeros(8, t)
    out = run(rules.conversions(), {"x": x, "f": f, "l": l, "u": z(np.uint32), "ul": z(np.uint64), "lu": z(np.int64),
                                  "trunc": z(np.int32), "ftoi": z(np.int32), "itof": z(np.float32),
                                  "utof": z(np.float32), "ltod": z(np.float64), "dtof": z(np.float32),
                                  "half": z(np.float16), "flags": z(np.uint32), "cmp": z(np.uint32)}, (1, 1, 1))
    with np.errstate(invalid="ignore", over="ignore"):
        ok = np.isfinite(f)     # float -> int of NaN or out of range is unspecified on GPUs
        expected = {"u": x.view(np.uint32), "ul": x.astype(np.int64).view(np.uint64),
                    "lu": x.view(np.uint32).astype(np.int64), "trunc": l.astype(np.int32),
                    "itof": x.astype(np.float32), "utof": x.view(np.uint32).astype(np.float32),
                    "ltod": l.astype(np.float64), "dtof": l.astype(np.float64).astype(np.float32),
                    "half": f.astype(np.float16), "flags": (f > 0) + (x < 0) * 2}
        g = f * np.float32(2)
        cmp = sum(c.astype(np.uint32) << j for j, c in enumerate([f < g, f <= g, f > g, f >= g, f == g, f != g]))
    for name, want in expected.items():
        np.testing.assert_array_equal(out[name], want, err_msg=name)
    np.testing.assert_array_equal(out["ftoi"][ok], np.trunc(f[ok]).astype(np.int32))
    np.testing.assert_array_equal(out["cmp"], cmp)


def _subgroup_reference(name: str, v: np.ndarray, size: int) -> np.ndarray | None:
    """What a subgroup operation gives each of 64 lanes, `size` lanes a subgroup."""
    g = v.reshape(-1, size)
    lane = np.arange(64) % size
    with np.errstate(over="ignore"):
        reductions = {"add": np.sum, "mul": np.prod, "min": np.min, "max": np.max, "and": np.bitwise_and.reduce,
                      "or": np.bitwise_or.reduce, "xor": np.bitwise_xor.reduce}
        op = name[len("subgroup_"):]
        if op in reductions:
            return np.repeat(reductions[op](g, axis=1).astype(v.dtype), size)
        if op in ("inclusive_add", "exclusive_add"):
            inclusive = np.cumsum(g, axis=1, dtype=v.dtype).reshape(-1)
            return inclusive if op == "inclusive_add" else inclusive - v
    start = np.arange(64) - lane
    return {"broadcast_first": v[start], "shuffle": v[start + 1], "shuffle_xor": v[np.arange(64) ^ 1],
            "shuffle_down": v[np.minimum(np.arange(64) + 1, 63)], "shuffle_up": v[np.arange(64) - 1]}.get(op)


def _bits_reference(name: str, x: np.ndarray, t: str) -> np.ndarray:
    u = x.view(np.uint32)
    a, b, c = x[:, 0], x[:, 1], x[:, 2]
    off = (u[:, 2] & 15).astype(np.int64)
    ones = np.array([bin(int(w)).count("1") for w in u[:, 0]])
    lz = np.array([32 - int(w).bit_length() for w in u[:, 0]])
    tz = np.array([(int(w) & -int(w)).bit_length() - 1 if w else 32 for w in u[:, 0]])
    field = (u[:, 0].astype(np.int64) >> off) & 255
    if t == "i32":
        field = np.where(field >= 128, field - 256, field)
    mask = (255 << off) & 0xFFFFFFFF
    inserted = ((u[:, 0] & ~mask) | ((u[:, 1].astype(np.int64) << off) & mask)).astype(np.uint32)
    def dot(kind: type) -> np.ndarray:        # x[4 i] . x[4 i + 1] bytewise, plus x[4 i + 2] (as i32 when signed)
        a8, b8 = (np.ascontiguousarray(u[:, j]).view(kind).reshape(-1, 4).astype(np.int64) for j in (0, 1))
        acc = u[:, 2].astype(np.int32 if kind is np.int8 else np.uint32).astype(np.int64)
        return (((a8 * b8).sum(axis=1) + acc) % 2**32).astype(np.uint32)
    dot_i8, dot_u8 = dot(np.int8).view(np.int32), dot(np.uint8)
    return {"dot4_i8": dot_i8, "dot4_u8": dot_u8,
            "abs": np.abs(a), "min": np.minimum(a, b), "max": np.maximum(a, b),
            "clamp": np.minimum(np.maximum(a, b), c), "count_ones": ones, "leading_zeros": lz,
            "trailing_zeros": tz, "extract_bits": field, "insert_bits": inserted.view(x.dtype)}[name]


@pytest.mark.parametrize("t", ["u32", "i32"])
def test_integer_intrinsics(run, t):
    dtype = np.dtype(ir.NUMPY[t])
    x = rng.integers(0, 2**32, (64, 4), dtype=np.uint64).astype(np.uint32).view(dtype)
    x[:4, 0] = [0, 1, 0x80000000, 0xFFFFFFFF] if t == "u32" else [0, 1, -2**31, -1]
    x[:, 2] %= 25      # extract/insert offsets: x & 15 with 8-bit fields stay below 32 bits
    k = rules.every_intrinsic(t)
    out = run(k, {"x": x.reshape(-1), **{b.name: np.zeros(64 * 64, ir.NUMPY[b.elem]) for b in k.buffers[1:]}},
                  (1, 1, 1))
    size = next(s for s in (4, 8, 16, 32, 64) if out[f"out_{t}"].reshape(64, 64)[0, [
        i for n, o, i in rules.intrinsic_slots(t) if n == "subgroup_add"][0]] == x[:s, 0].sum(dtype=dtype))
    for name, o, index in rules.intrinsic_slots(t):
        got = out[f"out_{o}"].reshape(64, 64)[:, index]
        if name == "half_to_f32":
            want = x[:, 0].view(np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
            np.testing.assert_array_equal(got[~np.isnan(want)], want[~np.isnan(want)])
            continue
        want = _subgroup_reference(name, x[:, 0], size) if name.startswith("subgroup_") else \
            _bits_reference(name, x, t)
        lane = np.arange(64) % size      # shuffles past the subgroup's end are unspecified
        valid = lane < size - 1 if name == "subgroup_shuffle_down" else lane > 0 if name == "subgroup_shuffle_up" \
            else slice(None)
        np.testing.assert_array_equal(got[valid], np.asarray(want).astype(got.dtype)[valid], err_msg=name)


def test_float_intrinsics(run):
    x = rng.uniform(-4, 4, (64, 4)).astype(np.float32)
    x[:6, 0] = [0.5, 1.5, 2.5, -0.5, np.inf, np.nan]
    out = run(rules.every_intrinsic("f32"), {"x": x.reshape(-1), "out_f32": np.zeros(64 * 64, np.float32),
                                             "out_u32": np.zeros(64 * 64, np.uint32)}, (1, 1, 1))
    a, b, c = x[:, 0], x[:, 1], x[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        reference = {"sqrt": np.sqrt(a), "rsqrt": 1 / np.sqrt(a), "exp": np.exp(a), "exp2": np.exp2(a),
                     "log": np.log(a), "log2": np.log2(a), "sin": np.sin(a), "cos": np.cos(a), "tan": np.tan(a),
                     "tanh": np.tanh(a), "floor": np.floor(a), "ceil": np.ceil(a), "trunc": np.trunc(a),
                     "round": np.round(a), "pow": np.power(np.abs(a), b), "fma": a * b + c, "abs": np.abs(a),
                     "isnan": np.isnan(a), "isinf": np.isinf(a), "f32_to_half": None}
    finite = np.isfinite(a)
    for name, o, index in rules.intrinsic_slots("f32"):
        got, want = out[f"out_{o}"].reshape(64, 64)[:, index], reference.get(name)
        if want is None:
            continue
        if name == "pow":       # pow of a negative base is undefined in GLSL
            got, want = got[a > 0], want[a > 0]
        elif name not in ("isnan", "isinf"):
            got, want = got[finite], want[finite]
        np.testing.assert_allclose(got, want.astype(got.dtype), rtol=1e-5, atol=1e-6, err_msg=name)
