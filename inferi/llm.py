"""`inferi.load_model`: a GGUF language model on a device, with its tokenizer, a KV cache kept across calls, and
text generation.

Generation runs the prompt through the model in chunks (the prefill: quantized matrix products), then decodes one
token at a time with a captured decode step: the token's whole forward pass is recorded once into a graph, and each
new token only writes its id and position into device buffers and replays the graph. Greedy generation captures the
pick too: the replay leaves the argmax as the next step's token id and advances the position, on the device, so
that a token costs one replay and the read of one id. The cache remembers which
tokens it holds, so that a chat turn that extends the previous conversation only runs the new tokens.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

import vortx as vx
from khal_runtime.backends.base import BackendError

from .chat_template import encode_chat
from .config import ModelConfig
from .gguf import read_gguf
from .model import KVCache, Transformer, Workspace
from .sampling import Sampler, SamplingParams
from .tokenizer import Tokenizer, TokenizerError
from .weights import load_weights

DEFAULT_CONTEXT = 4096
PREFILL_CHUNK = 512


class ContextError(ValueError):
    """More tokens than the context holds."""


class LanguageModel:
    def __init__(self, path: Path, backend: str | None = None, context_length: int | None = None,
                 progress: bool = True):
        # the device (a backend's start: drivers, adapters) is the process's, shared by every model on it; what
        # follows is the model's load, from the file to the first token possible
        started = time.perf_counter()
        self.device = vx.device(backend or "auto")
        self.device_seconds = time.perf_counter() - started
        started = time.perf_counter()
        self.path = Path(path)
        self.file = read_gguf(self.path)
        where = str(self.path)
        self.config = ModelConfig.from_metadata(self.file.metadata, where)
        try:
            self.tokenizer = Tokenizer.from_gguf(self.file.metadata)
        except TokenizerError as e:
            raise TokenizerError(f"{where}: {e}") from None
        self.template = self.file.metadata.get("tokenizer.chat_template")
        self.ctx = context_length or min(DEFAULT_CONTEXT, self.config.context_length)
        if not 1 <= self.ctx <= self.config.context_length:
            raise ContextError(f"{where}: a context of {self.ctx} tokens is outside 1 .. {self.config.context_length}"
                               " (the model's context length)")
        self.weights = load_weights(self.file, self.config, self.device, progress)
        self.model = Transformer(self.config, self.weights)
        try:
            self.cache = KVCache(self.config, self.ctx, self.device)
        except (MemoryError, BackendError) as e:    # a context the device cannot hold: the user's to lower
            need = KVCache.bytes_for(self.config, self.ctx)
            raise ContextError(f"{where}: a KV cache of {self.ctx} tokens ({need / 2**30:,.1f} GiB) does not fit "
                               f"on {self.device.backend.name}: {e}; choose a smaller context") from None
        self.cached: list[int] = []             # the tokens whose keys and values the cache holds, in order
        self.decode_step = Workspace(self.config, 1, self.device)
        self.graphs = [None, None]              # the captured decode step, without and with greedy picking
        self.device.synchronize()
        self.load_seconds = time.perf_counter() - started

    # --- logits -------------------------------------------------------------------------------------------------

    def logits(self, token_ids: Sequence[int]) -> np.ndarray:
        """The logits at every position of `token_ids`, [len, vocab], from a fresh cache."""
        ids = self._check_ids(token_ids)
        cache = KVCache(self.config, len(ids), self.device)
        ws = Workspace(self.config, len(ids), self.device, all_logits=True)
        ws.set_inputs(ids, 0)
        return self.model.forward(ws, cache, all_logits=True).numpy()

    def _check_ids(self, token_ids: Sequence[int]) -> list[int]:
        ids = [int(t) for t in token_ids]
        if not ids:
            raise ValueError("inferi: no tokens")
        bad = next((t for t in ids if not 0 <= t < self.config.vocab_size), None)
        if bad is not None:
            raise ValueError(f"inferi: token id {bad} is outside the vocabulary (0 .. {self.config.vocab_size - 1})")
        return ids

    # --- the cache ----------------------------------------------------------------------------------------------

    def reset(self) -> None:
        self.cached.clear()

    def prefill(self, ids: list[int]) -> vx.Tensor:
        """Brings the cache to hold `ids`, running only what it lacks; the last token's logits, (1, vocab)."""
        if len(ids) > self.ctx:
            raise ContextError(f"inferi: {len(ids)} tokens do not fit in the context of {self.ctx}")
        keep = 0
        while keep < min(len(ids), len(self.cached)) and ids[keep] == self.cached[keep]:
            keep += 1
        keep = min(keep, len(ids) - 1)          # the last token always runs: its logits are the answer
        del self.cached[keep:]
        logits = None
        for start in range(keep, len(ids), PREFILL_CHUNK):
            chunk = ids[start:start + PREFILL_CHUNK]
            ws = self.decode_step if len(chunk) == 1 else Workspace(self.config, len(chunk), self.device)
            ws.set_inputs(chunk, start)
            logits = self.model.forward(ws, self.cache)
            self.cached += chunk
        return logits

    def _decode(self, token: int) -> vx.Tensor:
        """Runs one token after the cached ones (a replay of the captured step); its logits, (1, vocab)."""
        self._replay(token, greedy=False)
        return self.decode_step.logits

    def _decode_greedy(self, token: int) -> int:
        """Runs one token after the cached ones and returns the argmax of its logits: a replay of the captured
        step that also picks the next token and advances the position on the device, so that the next replay
        needs nothing written and only a token id comes back."""
        ws = self._replay(token, greedy=True)
        following = int(ws.ids.numpy()[0])
        ws.holds = ((following,), len(self.cached))
        return following

    def _replay(self, token: int, greedy: bool) -> Workspace:
        if len(self.cached) >= self.ctx:
            raise ContextError(f"inferi: the context of {self.ctx} tokens is full")
        ws = self.decode_step
        ws.set_inputs([token], len(self.cached))
        if self.graphs[greedy] is None:
            if greedy:                          # argmax allocates its partials on a first call, outside the capture
                vx.argmax(ws.logits, out=vx.empty((1,), vx.u32, self.device))
            with self.device.capture() as graph:
                self.model.forward(ws, self.cache)
                if greedy:
                    vx.argmax(ws.logits, out=ws.ids)
                    ws.positions += 1
            self.graphs[greedy] = graph
        self.graphs[greedy].replay()
        ws.holds = None
        self.cached.append(token)
        return ws

    # --- generation ---------------------------------------------------------------------------------------------

    def generate_tokens(self, prompt_ids: Sequence[int], params: SamplingParams) -> Iterator[int]:
        """Token ids after `prompt_ids`, until an end-of-generation token (not yielded) or max_tokens."""
        params.check()
        sampler = Sampler(params, self.config.vocab_size)
        history = self._check_ids(prompt_ids)
        token = sampler.sample(self.prefill(history).view(self.config.vocab_size), history)
        for produced in range(1, params.max_tokens + 1):
            if token in self.tokenizer.eog_ids:
                return
            yield token
            history.append(token)
            if produced == params.max_tokens or len(self.cached) >= self.ctx:
                return
            if sampler.greedy:
                token = self._decode_greedy(token)
            else:
                token = sampler.sample(self._decode(token).view(self.config.vocab_size), history)

    def generate(self, prompt: str | Sequence[int], params: SamplingParams | None = None,
                 stop: Sequence[str] = ()) -> Iterator[str]:
        """Text after `prompt` (a string, encoded with the model's BOS convention, or token ids), as produced."""
        ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        yield from stream_text(self.tokenizer, self.generate_tokens(ids, params or SamplingParams()), stop)

    def chat(self, messages: list[dict], params: SamplingParams | None = None,
             stop: Sequence[str] = ()) -> Iterator[str]:
        """The assistant's reply to `messages` ([{"role", "content"}, ...]) in the model's chat template."""
        ids = encode_chat(self.tokenizer, self.template, messages)
        yield from stream_text(self.tokenizer, self.generate_tokens(ids, params or SamplingParams()), stop)


def stream_text(tokenizer: Tokenizer, tokens: Iterator[int], stop: Sequence[str]) -> Iterator[str]:
    """Text of `tokens` as it becomes whole, ending before the first stop string. Text that could begin a stop
    string is held back until the next tokens show whether it does."""
    decoder, pending = tokenizer.decoder(), ""
    hold = max((len(s) for s in stop), default=0)
    for token in tokens:
        pending += decoder.push(token)
        hits = [i for i in (pending.find(s) for s in stop if s) if i >= 0]
        if hits:
            if min(hits):
                yield pending[:min(hits)]
            return
        safe = len(pending) - max(0, hold - 1)
        if safe > 0:
            yield pending[:safe]
            pending = pending[safe:]
    if pending:
        yield pending


def load_model(path: str | os.PathLike | None = None, backend: str | None = None,
               context_length: int | None = None, progress: bool = True) -> LanguageModel:
    """A GGUF model (a path, a name that `inferi pull` knows, or None for the default model) on `backend`
    ("cuda", "webgpu", "cpu"; None: the best present), with a cache of `context_length` tokens."""
    from .pull import resolve_model
    return LanguageModel(resolve_model(path, progress=progress), backend, context_length, progress)
