"""inferi.sampling: SamplingParams.check's errors; each step of the chain on small crafted logits (penalties exactly,
top-k, top-p, min-p and temperature by their distributions); seeds; `sample` (on the device, and by the backend's
choice) giving the ids of `sample_numpy` on every backend; both against a plain full-vocabulary implementation of
the chain written here; what `sample` reads back; and the errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import vortx as vx
from inferi.sampling import Sampler, SamplingParams

GREEDY = dict(temperature=0, top_k=0, top_p=1, min_p=0)
PLAIN = dict(top_k=0, top_p=1, min_p=0, temperature=1)          # a draw from softmax(logits), nothing else


@pytest.fixture
def dev(backend):
    return vx.device(backend.name)


def draws(params: SamplingParams, logits: list[float], n: int = 4000, history=()) -> np.ndarray:
    """How often each token is drawn in n samples."""
    sampler = Sampler(params, len(logits))
    x = np.array(logits, np.float32)
    return np.bincount([sampler.sample_numpy(x, history) for _ in range(n)], minlength=len(logits)) / n


def assert_distribution(freq: np.ndarray, probs: np.ndarray, n: int = 4000) -> None:
    """Observed frequencies within 5 standard deviations of the expected probabilities (zero where zero)."""
    probs = np.asarray(probs, np.float64)
    assert np.all(freq[probs == 0] == 0), (freq, probs)
    sigma = np.sqrt(probs * (1 - probs) / n)
    assert np.all(np.abs(freq - probs) <= 5 * sigma + 1e-12), (freq, probs)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


# --- SamplingParams.check ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,allowed", [
    ("temperature", -0.1, "0 <= temperature <= 2"), ("temperature", 2.5, "0 <= temperature <= 2"),
    ("temperature", math.nan, "0 <= temperature <= 2"), ("top_k", -1, "top_k >= 0"),
    ("top_p", 1.01, "0 <= top_p <= 1"), ("min_p", -0.01, "0 <= min_p <= 1"),
    ("repeat_penalty", 0, "0 < repeat_penalty <= 2"), ("repeat_penalty", 2.5, "0 < repeat_penalty <= 2"),
    ("presence_penalty", -3, "-2 <= presence_penalty <= 2"), ("frequency_penalty", 2.1, "-2 <= frequency_penalty"),
    ("repeat_last_n", -2, "repeat_last_n >= -1"), ("seed", -1, "seed >= 0"), ("max_tokens", 0, "max_tokens >= 1"),
])
def test_check_names_the_field_and_its_range(field, value, allowed):
    params = SamplingParams(**{field: value})
    with pytest.raises(ValueError, match=f"SamplingParams.{field} = .* is out of range: {allowed}"):
        params.check()
    with pytest.raises(ValueError, match=f"SamplingParams.{field}"):
        Sampler(params, 10)


@pytest.mark.parametrize("field,value", [("top_k", 2.5), ("temperature", "hot"), ("max_tokens", True),
                                         ("seed", 1.0), ("repeat_last_n", None)])
def test_check_refuses_wrong_types(field, value):
    with pytest.raises(TypeError, match=f"SamplingParams.{field} must be an? (int|number)"):
        SamplingParams(**{field: value}).check()


def test_defaults_and_edges_are_valid():
    SamplingParams().check()
    SamplingParams(temperature=2, top_p=0, min_p=1, repeat_penalty=0.5, presence_penalty=-2, frequency_penalty=2,
                   repeat_last_n=-1, seed=2**70, max_tokens=1).check()
    with pytest.raises(ValueError, match="vocab_size must be a positive int"):
        Sampler(SamplingParams(), 0)


# --- each step -----------------------------------------------------------------------------------------------------

def test_greedy_takes_the_highest_and_the_lowest_id_of_ties():
    sampler = Sampler(SamplingParams(temperature=0), 5)
    assert sampler.sample_numpy(np.array([1, 3, 2, 3, -1], np.float32), []) == 1
    assert sampler.sample_numpy(np.array([-np.inf] * 5, np.float32), []) == 0


@pytest.mark.parametrize("logits,penalty,expected", [
    ([5.0, 4.5, 0.0], 1.2, 1),          # 5 / 1.2 = 4.17 < 4.5
    ([5.0, 4.0, 0.0], 1.2, 0),          # 4.17 > 4
    ([-1.0, -1.1, -5.0], 1.2, 1),       # a negative logit is multiplied: -1.2 < -1.1
    ([-1.0, -1.1, -5.0], 0.8, 0),       # a penalty below 1 lifts it: -0.8
])
def test_repeat_penalty_divides_positive_and_multiplies_negative_logits(logits, penalty, expected):
    sampler = Sampler(SamplingParams(repeat_penalty=penalty, **GREEDY), 3)
    assert sampler.sample_numpy(np.array(logits, np.float32), [0]) == expected


@pytest.mark.parametrize("presence,frequency,expected", [(0.6, 0, 1), (0.4, 0, 0), (0, 0.2, 1), (0, 0.1, 0),
                                                         (0.25, 0.1, 1), (-1, 0, 0)])
def test_presence_and_frequency_penalties(presence, frequency, expected):
    # token 0 seen three times: 3 - presence - 3 * frequency against 2.5
    params = SamplingParams(presence_penalty=presence, frequency_penalty=frequency, **GREEDY)
    assert Sampler(params, 3).sample_numpy(np.array([3.0, 2.5, 0.0], np.float32), [0, 2, 0, 0]) == expected


@pytest.mark.parametrize("last_n,expected", [(64, 0), (65, 1), (-1, 1), (0, 0)])
def test_penalty_window_is_the_last_repeat_last_n_tokens(last_n, expected):
    history = [0] + [2] * 64                            # token 0 is 65 tokens back
    params = SamplingParams(repeat_penalty=2, repeat_last_n=last_n, **GREEDY)
    assert Sampler(params, 3).sample_numpy(np.array([3.0, 2.0, -9.0], np.float32), history) == expected


def test_temperature_scales_the_distribution():
    logits = [2.0, 1.0, 0.5, -1.0]
    for t in (0.5, 1.0, 1.7):
        assert_distribution(draws(SamplingParams(**{**PLAIN, "temperature": t}, seed=1), logits),
                            softmax(np.array(logits) / t))


def test_top_k_keeps_the_k_highest():
    logits = [1.0, 3.0, 2.0, 2.5, 0.0]
    head = softmax(np.array([3.0, 2.5]))
    assert_distribution(draws(SamplingParams(**{**PLAIN, "top_k": 2}, seed=2), logits), [0, head[0], 0, head[1], 0])
    assert np.all(draws(SamplingParams(**{**PLAIN, "top_k": 1}, seed=3), logits, 200) == [0, 1, 0, 0, 0])


def test_top_p_keeps_the_smallest_head_reaching_p_before_temperature():
    logits = np.log([0.5, 0.3, 0.15, 0.05])
    for t in (1.0, 2.0):                                # the head is chosen at temperature 1 (llama.cpp's order)
        freq = draws(SamplingParams(**{**PLAIN, "top_p": 0.75, "temperature": t}, seed=4), list(logits))
        assert_distribution(freq, [*softmax(logits[:2] / t), 0, 0])
    assert draws(SamplingParams(**{**PLAIN, "top_p": 0.0}, seed=5), list(logits), 200)[0] == 1.0


def test_min_p_keeps_tokens_within_a_factor_of_the_best():
    logits = np.log([0.5, 0.3, 0.15, 0.05])
    freq = draws(SamplingParams(**{**PLAIN, "min_p": 0.2}, seed=6), list(logits))     # at least 0.1
    assert_distribution(freq, [*softmax(logits[:3]), 0])


# --- seeds, and against a plain implementation ---------------------------------------------------------------------

def test_the_same_seed_gives_the_same_tokens():
    rng = np.random.default_rng(0)
    rows = (rng.standard_normal((30, 500)) * 2).astype(np.float32)

    def run(seed):
        sampler = Sampler(SamplingParams(seed=seed, top_k=0, min_p=0), 500)
        return [sampler.sample_numpy(row, []) for row in rows]

    assert run(7) == run(7)
    assert run(7) != run(8)
    assert run(None) != run(None)                       # fresh entropy (equal with probability ~1e-50)


def plain_chain(p: SamplingParams, logits: np.ndarray, history: list[int], rng: np.random.Generator) -> int:
    """The chain over the whole vocabulary, step by step as the module docstring states it."""
    x = logits.astype(np.float64)
    n = len(history) if p.repeat_last_n == -1 else p.repeat_last_n
    window = history[max(0, len(history) - n):]
    for token in set(window):
        count = window.count(token)
        x[token] = x[token] * p.repeat_penalty if x[token] <= 0 else x[token] / p.repeat_penalty
        x[token] -= count * p.frequency_penalty + p.presence_penalty
    ids = np.lexsort((np.arange(x.size), -x))
    x = x[ids]
    if p.temperature == 0:
        return int(ids[0])
    if p.top_k:
        x, ids = x[:p.top_k], ids[:p.top_k]
    if p.top_p < 1:
        keep = next(i + 1 for i, c in enumerate(np.cumsum(softmax(x))) if c >= p.top_p or i + 1 == x.size)
        x, ids = x[:keep], ids[:keep]
    keep = x >= x[0] + math.log(p.min_p) if p.min_p > 0 else np.ones(x.size, bool)
    x, ids = x[keep], ids[keep]
    cdf = np.cumsum(softmax(x / p.temperature))
    return int(ids[min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), ids.size - 1)])


CHAINS = {
    "default": SamplingParams(seed=11),
    "greedy": SamplingParams(temperature=0),
    "greedy, penalties": SamplingParams(temperature=0, repeat_penalty=1.5, frequency_penalty=0.5),
    "penalties": SamplingParams(seed=12, top_k=100, repeat_penalty=1.3, presence_penalty=0.8, frequency_penalty=0.4,
                                repeat_last_n=16),
    "lifting penalties": SamplingParams(seed=13, repeat_penalty=0.7, presence_penalty=-1.5),
    "no top-k": SamplingParams(seed=14, top_k=0, top_p=0.9, temperature=1.3),
    "top-k 256": SamplingParams(seed=15, top_k=256, top_p=1, min_p=0, temperature=2, repeat_last_n=-1,
                                repeat_penalty=1.1),
}


def steps(vocab: int, n: int, seed: int = 0):
    """Logits of n steps, where recent tokens score high (so that penalties matter), with ties."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield np.round(rng.standard_normal(vocab) * 3, 1).astype(np.float32)


@pytest.mark.parametrize("name", CHAINS)
def test_sample_numpy_is_the_chain(name):
    p = CHAINS[name]
    sampler, rng = Sampler(p, 3000), np.random.default_rng(p.seed)
    history = list(range(0, 3000, 97))
    for x in steps(3000, 25):
        x[history[-8:]] += 6
        token = sampler.sample_numpy(x, history)
        assert token == plain_chain(p, x, history, rng), name
        history.append(token)


@pytest.mark.parametrize("on_device", [True, None])
@pytest.mark.parametrize("name", CHAINS)
def test_sample_gives_the_ids_of_sample_numpy(dev, name, on_device):
    p = CHAINS[name]
    vocab = 49152 if name == "default" else 5000
    on_tensor, reference = Sampler(p, vocab, on_device=on_device), Sampler(p, vocab)
    history = [5, 7, 7, 4000]
    for x in steps(vocab, 6 if vocab > 5000 else 12, seed=1):
        x[history[-6:]] += 5
        token = on_tensor.sample(vx.tensor(x, device=dev), history)
        assert token == reference.sample_numpy(x, history), name
        history.append(token)
    logits = vx.tensor(np.zeros((1, vocab), np.float32), device=dev)       # (1, vocab) works too
    assert on_tensor.sample(logits, []) == reference.sample_numpy(logits.numpy(), [])


# --- what sample reads back ----------------------------------------------------------------------------------------

@pytest.fixture
def reads(monkeypatch):
    """The sizes of the tensors that are read back."""
    sizes: list[int] = []
    numpy = vx.Tensor.numpy

    def recording(t):
        sizes.append(t.size)
        return numpy(t)

    monkeypatch.setattr(vx.Tensor, "numpy", recording)
    return sizes


@pytest.mark.parametrize("params,history,read", [
    (SamplingParams(temperature=0), [1, 2], [1]),                                     # argmax: one id
    (SamplingParams(temperature=0, repeat_penalty=1.2), [1, 2, 2], [3, 3]),         # the best 1 + 2 seen
    (SamplingParams(top_k=40), [], [40, 40]),
    (SamplingParams(top_k=40, presence_penalty=0.5), [9, 9, 8], [42, 42]),
    (SamplingParams(top_k=0), [], [2000]),                                              # all the logits
    (SamplingParams(top_k=40, presence_penalty=-0.5), [9], [2000]),                 # a penalty that lifts
])
def test_sample_reads_back_only_what_it_needs(dev, reads, params, history, read):
    logits = vx.tensor(np.arange(2000, dtype=np.float32), device=dev)
    sampler = Sampler(params, 2000, on_device=True)
    reads.clear()
    sampler.sample(logits, history)
    assert reads == read


def test_the_cpu_backends_read_the_logits(reads):
    logits = vx.tensor(np.arange(300, dtype=np.float32), device="cpu")
    reads.clear()
    assert Sampler(SamplingParams(temperature=0), 300).sample(logits, []) == 299
    assert reads == [300]


# --- errors --------------------------------------------------------------------------------------------------------

def test_errors(dev):
    sampler = Sampler(SamplingParams(repeat_penalty=1.1), 10)
    with pytest.raises(ValueError, match=r"logits of shape \(11,\); expected \(10,\) or \(1, 10\)"):
        sampler.sample_numpy(np.zeros(11, np.float32), [])
    with pytest.raises(ValueError, match=r"logits of shape \(2, 10\)"):
        sampler.sample(vx.zeros((2, 10), device=dev), [])
    with pytest.raises(TypeError, match="logits must be a vortx.Tensor"):
        sampler.sample(np.zeros(10, np.float32), [])
    with pytest.raises(TypeError, match="logits must hold floats"):
        sampler.sample_numpy(np.zeros(10, np.int32), [])
    with pytest.raises(ValueError, match=r"history\[2\] = 10 is not a token id of a vocabulary of 10"):
        sampler.sample_numpy(np.zeros(10, np.float32), [1, 2, 10])
    with pytest.raises(ValueError, match="highest logit .* is -inf"):
        sampler.sample_numpy(np.full(10, -np.inf, np.float32), [])


@pytest.mark.parametrize("on_device", [True, False])
def test_nan_logits(dev, on_device):
    x = np.zeros(3000, np.float32)
    x[[70, 9]] = np.nan
    for params in (SamplingParams(seed=1), SamplingParams(temperature=0, repeat_penalty=1.5)):
        sampler = Sampler(params, 3000, on_device=on_device)
        with pytest.raises(ValueError, match="the logits hold NaN"):
            sampler.sample(vx.tensor(x, device=dev), [1])
        with pytest.raises(ValueError, match="the logits hold NaN"):
            sampler.sample_numpy(x, [1])
    greedy = Sampler(SamplingParams(temperature=0), 3000, on_device=on_device)      # numpy.argmax's rule
    assert greedy.sample(vx.tensor(x, device=dev), []) == greedy.sample_numpy(x, []) == 9
