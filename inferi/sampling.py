"""Choosing the next token from a model's logits: `SamplingParams` (validated by `check()`) and `Sampler`.

The chain is llama.cpp's default sampler chain (common/sampling.cpp) restricted to these options, in its order:

1. penalties over the last `repeat_last_n` tokens of the history (-1: all of it, 0: none), as llama.cpp applies
   them to each token seen `count` times: a positive logit is divided by `repeat_penalty`, a negative (or zero)
   one multiplied by it, then `count * frequency_penalty + presence_penalty` is subtracted;
2. top-k: the `top_k` highest logits (0: all);
3. top-p: the smallest head whose probabilities (softmax at temperature 1) sum to at least `top_p` (1: all);
4. min-p: the logits within log(min_p) of the highest, i.e. probability at least min_p times the highest's (0: all);
5. temperature: the logits divided by `temperature`, then one draw from their softmax.

So top-p and min-p see the distribution before temperature, as in llama.cpp. Temperature 0 is greedy: the highest
logit after the penalties (steps 2-4 always keep it), and no draw. Candidates are ranked by logit, ties by the
lower token id, and every step keeps at least one. Each non-greedy token takes exactly one uniform draw from a
numpy Generator seeded with `seed` (`default_rng(seed)`; None: fresh entropy), so the same seed, logits and
history give the same tokens.

Where the device pays (CUDA, and WebGPU on a GPU adapter), `sample` selects on the device and reads back only
what it needs: greedy without penalties reads one id (`vortx.argmax`); otherwise the `top_k` best raw logits plus
one per distinct token in the penalty window (`vortx.top_k`). That is exact when the penalties never raise a
logit (repeat_penalty >= 1, presence and frequency penalties >= 0): a token outside the best top_k + m raw
logits, m the penalized tokens, still has top_k unpenalized tokens above it. Otherwise (top_k 0, penalties that
raise logits, more than vortx.select's MAX_K candidates), and on the CPU interpreter or a CPU adapter such as
lavapipe (where reading the logits is a copy in host memory, cheaper than selecting), it reads the logits.
`sample_numpy` is the reference: it takes those candidates from a numpy array (with the penalized tokens among
them, which lifting penalties may raise into the top-k) and runs the same host steps, so both give the same ids.
NaN logits: greedy without penalties gives the first NaN's id (numpy.argmax's rule, which vortx.argmax keeps);
every other path raises ValueError.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import vortx
    from khal_runtime import Backend


@dataclass
class SamplingParams:
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_last_n: int = 64
    seed: int | None = None
    max_tokens: int = 256                       # temperature 0 = greedy

    def check(self) -> None:
        """ValueError (TypeError for a value of the wrong type) naming the first field out of its range."""
        _number("temperature", self.temperature, 0, 2, "0 <= temperature <= 2 (0: greedy)")
        _integer("top_k", self.top_k, 0, "top_k >= 0 (0: off)")
        _number("top_p", self.top_p, 0, 1, "0 <= top_p <= 1 (1: off)")
        _number("min_p", self.min_p, 0, 1, "0 <= min_p <= 1 (0: off)")
        _number("repeat_penalty", self.repeat_penalty, 0, 2, "0 < repeat_penalty <= 2 (1: off)")
        if self.repeat_penalty == 0:
            raise ValueError("SamplingParams.repeat_penalty = 0 is out of range: 0 < repeat_penalty <= 2 (1: off)")
        _number("presence_penalty", self.presence_penalty, -2, 2, "-2 <= presence_penalty <= 2 (0: off)")
        _number("frequency_penalty", self.frequency_penalty, -2, 2, "-2 <= frequency_penalty <= 2 (0: off)")
        _integer("repeat_last_n", self.repeat_last_n, -1, "repeat_last_n >= -1 (-1: the whole history, 0: off)")
        if self.seed is not None:
            _integer("seed", self.seed, 0, "seed >= 0, or None for a random seed")
        _integer("max_tokens", self.max_tokens, 1, "max_tokens >= 1")

    def penalizes(self) -> bool:
        return self.repeat_penalty != 1 or self.presence_penalty != 0 or self.frequency_penalty != 0

    def lifts(self) -> bool:
        """Whether a penalty can raise a logit (a repeat penalty below 1, a negative presence or frequency one)."""
        return self.repeat_penalty < 1 or self.presence_penalty < 0 or self.frequency_penalty < 0


def _number(name: str, value: object, lo: float, hi: float, allowed: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"SamplingParams.{name} must be a number, not {value!r}; {allowed}")
    if not lo <= value <= hi:                   # also refuses NaN
        raise ValueError(f"SamplingParams.{name} = {value!r} is out of range: {allowed}")


def _integer(name: str, value: object, lo: int, allowed: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"SamplingParams.{name} must be an int, not {value!r}; {allowed}")
    if value < lo:
        raise ValueError(f"SamplingParams.{name} = {value!r} is out of range: {allowed}")


class Sampler:
    """Picks tokens with `params` from logits over a vocabulary of `vocab_size` tokens. `on_device` forces
    (True) or forbids (False) selection on the device in `sample`; None chooses by backend (module docstring)."""

    def __init__(self, params: SamplingParams, vocab_size: int, *, on_device: bool | None = None):
        params.check()
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral) or vocab_size < 1:
            raise ValueError(f"Sampler: vocab_size must be a positive int, not {vocab_size!r}")
        self.params, self.vocab_size, self.on_device = params, int(vocab_size), on_device
        self.rng = np.random.default_rng(params.seed)

    def sample(self, logits: vortx.Tensor, history: Sequence[int]) -> int:
        """The next token id from f32 logits on a vortx device (shape (vocab,), or (1, vocab))."""
        import vortx  # here, not at the top: SamplingParams alone (the CLI's flags) needs no GPU
        from vortx.select import MAX_K
        if not isinstance(logits, vortx.Tensor):
            raise TypeError(f"Sampler.sample: logits must be a vortx.Tensor, not {type(logits).__name__} (use "
                            "sample_numpy for numpy arrays)")
        self._check_shape("sample", logits.shape)
        window = self._window(history)
        on_device = self.on_device if self.on_device is not None else _selection_pays(logits.device.backend)
        count = self._candidates(window)
        if not on_device or count is None or count > MAX_K or (window and self.params.lifts()):
            return self._choose_from_logits(logits.numpy().reshape(-1), window, count)
        if count == 1 and not window:
            return int(vortx.argmax(logits).item())
        values, ids = vortx.top_k(logits, count)
        return self._choose(values.numpy().reshape(-1), ids.numpy().reshape(-1).astype(np.int64), window)

    def sample_numpy(self, logits: np.ndarray, history: Sequence[int]) -> int:
        """The reference: the next token id from logits in a numpy array (shape (vocab,) or (1, vocab))."""
        logits = np.asarray(logits)
        if logits.dtype.kind != "f":
            raise TypeError(f"Sampler.sample_numpy: logits must hold floats, not {logits.dtype}")
        self._check_shape("sample_numpy", logits.shape)
        window = self._window(history)
        return self._choose_from_logits(logits.astype(np.float32).reshape(-1), window, self._candidates(window))

    # --- the steps ---------------------------------------------------------------------------------------------

    @property
    def greedy(self) -> bool:
        """Whether every token is the argmax of the raw logits (temperature 0, no penalty): generation then picks
        it on the device, in the captured decode step."""
        return self.params.temperature == 0 and not self.params.penalizes()

    def _check_shape(self, where: str, shape: tuple[int, ...]) -> None:
        if not shape or shape[-1] != self.vocab_size or math.prod(shape) != self.vocab_size:
            raise ValueError(f"Sampler.{where}: logits of shape {tuple(shape)}; expected ({self.vocab_size},) or "
                             f"(1, {self.vocab_size}) for a vocabulary of {self.vocab_size}")

    def _window(self, history: Sequence[int]) -> dict[int, int]:
        """How often each token occurs in the penalty window (empty when no penalty is set)."""
        n = self.params.repeat_last_n
        if n == 0 or not self.params.penalizes() or len(history) == 0:
            return {}
        recent = np.asarray(history[-n:] if n > 0 else history)
        if recent.ndim != 1 or recent.dtype.kind not in "iu":
            raise TypeError(f"Sampler: history must be a sequence of token ids (ints), not {recent.dtype}")
        bad = np.flatnonzero((recent < 0) | (recent >= self.vocab_size))
        if bad.size:
            at = len(history) - len(recent) + int(bad[0])
            raise ValueError(f"Sampler: history[{at}] = {int(recent[bad[0]])} is not a token id of a vocabulary "
                             f"of {self.vocab_size}")
        ids, counts = np.unique(recent, return_counts=True)
        return dict(zip(ids.tolist(), counts.tolist()))

    def _candidates(self, window: dict[int, int]) -> int | None:
        """How many of the best raw logits the chain needs (None: all of them, ranked)."""
        head = 1 if self.params.temperature == 0 else self.params.top_k
        count = head + len(window)
        return None if head == 0 or count >= self.vocab_size else count

    def _choose_from_logits(self, logits: np.ndarray, window: dict[int, int], count: int | None) -> int:
        if count == 1 and not window:
            return int(np.argmax(logits))       # greedy: numpy's argmax, as vortx.argmax (NaN: the first one)
        _refuse_nan(logits)                     # before _best, whose partition would rank NaN anywhere
        ids = _best(logits, count)
        if window and count is not None:
            # penalized tokens outside the best raw logits: a penalty that lifts logits may bring them in
            ids = np.concatenate([ids, np.setdiff1d(np.fromiter(window, np.int64, len(window)), ids)])
        return self._choose(logits[ids], ids, window)

    def _choose(self, values: np.ndarray, ids: np.ndarray, window: dict[int, int]) -> int:
        """Steps 1-5 on candidates (values f32, ids int64), in rank order unless penalized: a token id."""
        _refuse_nan(values)
        p = self.params
        logits = values.astype(np.float64)
        if window:
            seen = np.array([window.get(i, 0) for i in ids.tolist()])
            hit = seen > 0
            lowered = np.where(logits <= 0, logits * p.repeat_penalty, logits / p.repeat_penalty)
            logits = np.where(hit, lowered - seen * p.frequency_penalty - p.presence_penalty, logits)
            order = np.lexsort((ids, -logits))
            logits, ids = logits[order], ids[order]
        head = 1 if p.temperature == 0 else p.top_k
        if head:
            logits, ids = logits[:head], ids[:head]
        if p.temperature == 0:
            return int(ids[0])
        if not np.isfinite(logits[0]):
            raise ValueError(f"Sampler: the highest logit (after the penalties) is {logits[0]}; sampling at a "
                             "temperature needs a finite one")
        if p.top_p < 1:
            probs = _softmax(logits)
            keep = int(np.searchsorted(np.cumsum(probs), p.top_p)) + 1    # the first prefix summing to >= top_p
            logits, ids = logits[:keep], ids[:keep]
        if p.min_p > 0:
            keep = max(1, int(np.count_nonzero(logits >= logits[0] + math.log(p.min_p))))
            logits, ids = logits[:keep], ids[:keep]
        cdf = np.cumsum(_softmax(logits / p.temperature))
        u = self.rng.random()
        return int(ids[min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), len(ids) - 1)])


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits[0])              # logits[0] is the largest: candidates are in rank order
    return e / e.sum()


def _refuse_nan(values: np.ndarray) -> None:
    if np.isnan(values).any():
        raise ValueError(f"Sampler: the logits hold NaN (at {int(np.flatnonzero(np.isnan(values))[0])} of the "
                         "candidates); the model's output is broken")


def _best(logits: np.ndarray, count: int | None) -> np.ndarray:
    """The ids of the `count` highest logits (all when None) in rank order: by value, ties by the lower id, exactly
    as vortx.top_k ranks them (no NaN here)."""
    n = logits.size
    if count is None or count >= n:
        return np.lexsort((np.arange(n), -logits))
    threshold = np.partition(logits, n - count)[n - count]      # the count-th highest
    above = np.flatnonzero(logits > threshold)
    ids = np.concatenate([above, np.flatnonzero(logits == threshold)[:count - above.size]])
    return ids[np.lexsort((ids, -logits[ids]))]


def _selection_pays(backend: Backend) -> bool:
    """Whether selecting on the backend's device beats reading the logits: not where device memory is host memory
    (the interpreter, a CPU Vulkan adapter such as lavapipe)."""
    if backend.name == "cpu":
        return False
    adapter = getattr(backend, "adapter", None)
    return getattr(adapter, "info", {}).get("adapter_type") != "CPU"
