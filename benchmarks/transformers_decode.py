"""`python -m benchmarks.transformers_decode [MODEL]`: the baseline for inferi's decode benchmark: transformers
(PyTorch eager attention, float32) on the same GGUF file, on CUDA if torch sees a GPU, else the CPU: load time,
prompt tokens/s (pp1 .. pp512 by default) and greedy decode tokens/s with a KV cache, and the greedy answer to the
capital-of-France question.

transformers reads the GGUF itself (`AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)`: it
dequantizes every tensor to float32 through the `gguf` package; it needs `accelerate` and `gguf` installed, and its
metadata reading is GGUFReader's, about 15 s for SmolLM2 here). The prompt and the question are encoded with
inferi's tokenizer and chat template, so that both programs run the same token ids.

Timing follows inferi.bench: ppN is one forward pass over N random tokens from an empty cache, after one untimed
pass of the same size; tgN is N single-token steps after a short prompt (each: a forward pass with the cache, an
argmax), the prompt and the first token excluded; the device is synchronized before each clock read.
`benchmarks.inferi_decode --transformers` calls `benchmark()` so that both appear in one run and one table.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@dataclass
class Baseline:
    device: str                     # "NVIDIA H200 (cuda)", "CPU (2 threads)"
    load_seconds: float
    prompt: dict[int, float]        # prompt length -> tokens/s
    decode: float                   # tokens/s
    produced: int
    answer: str
    weight_bytes: int               # of the float32 parameters, which every decoded token reads


class BaselineUnavailable(RuntimeError):
    """What transformers needs to read a GGUF file is missing here."""


def load(path: Path, device: str):
    """The GGUF model as a float32 transformers model with eager attention, on `device`, in eval mode."""
    needed = ("torch", "transformers", "accelerate", "gguf")
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise BaselineUnavailable(f"transformers reads a GGUF file only with torch, transformers, accelerate and gguf "
                                  f"installed; missing here: {', '.join(missing)}")
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32,
                                                 attn_implementation="eager")
    return model.to(device).eval()


def device_name(device: str) -> str:
    import torch
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} (cuda)"
    return f"CPU ({torch.get_num_threads()} threads)"


def _timed(device: str, run) -> tuple[float, object]:
    import torch
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    out = run()
    sync()
    return time.perf_counter() - start, out


def prompt_speed(model, device: str, n: int, vocab: int, seed: int = 0) -> float:
    import torch
    ids = torch.tensor(np.random.default_rng(seed).integers(0, vocab, (1, n)), device=device)
    with torch.no_grad():
        model(ids, use_cache=True)                       # untimed: kernels chosen, memory pooled
        seconds, _ = _timed(device, lambda: model(ids, use_cache=True))
    return n / seconds


def greedy(model, device: str, prompt: list[int], n: int) -> tuple[list[int], float]:
    """n greedy tokens after `prompt` with the KV cache; the tokens and the tokens/s of all but the first."""
    import torch
    with torch.no_grad():
        out = model(torch.tensor([prompt], device=device), use_cache=True)
        cache, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        tokens = [token]

        def steps():
            nonlocal cache, token
            for _ in range(n - 1):
                out = model(token, past_key_values=cache, use_cache=True)
                cache, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
                tokens.append(token)

        seconds, _ = _timed(device, steps)
    return [int(t) for t in torch.cat(tokens, dim=1)[0].tolist()], (n - 1) / seconds


def benchmark(path: str | Path, prompt_sizes: list[int] = (1, 16, 64, 512), decode: int = 128,
              device: str | None = None, threads: int | None = None) -> Baseline:
    """The baseline on `device` (default: cuda if torch sees a GPU); `threads`: torch's CPU threads (on a shared
    machine fewer threads than cores can be faster: torch's threads wait for each other at every operation)."""
    import torch

    from inferi.chat_template import encode_chat
    from inferi.gguf import read_gguf
    from inferi.tokenizer import Tokenizer

    path = Path(path)
    if threads:
        torch.set_num_threads(threads)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    with read_gguf(path) as f:
        tokenizer, template = Tokenizer.from_gguf(f.metadata), f.metadata.get("tokenizer.chat_template")
    seconds, model = _timed(device, lambda: load(path, device))
    question = encode_chat(tokenizer, template, QUESTION)
    answer_ids, _ = greedy(model, device, question, 12)
    ends = [i for i, t in enumerate(answer_ids) if t in tokenizer.eog_ids]
    answer = tokenizer.decode(answer_ids[:ends[0]] if ends else answer_ids)
    prompt = {n: prompt_speed(model, device, n, model.config.vocab_size) for n in prompt_sizes}
    _, speed = greedy(model, device, tokenizer.encode("Once upon a time"), decode + 1)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return Baseline(device_name(device), seconds, prompt, speed, decode, answer, weights)


def line(b: Baseline) -> str:
    return (f"transformers: {b.device}: load {b.load_seconds:.2f} s, "
            + ", ".join(f"pp{n} {s:,.0f} t/s" for n, s in b.prompt.items())
            + f", tg{b.produced} {b.decode:,.1f} t/s; answer {b.answer!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="a GGUF file or a model name (default: the default model)")
    parser.add_argument("--device", choices=("cuda", "cpu"), help="default: cuda if torch sees a GPU")
    parser.add_argument("--prompt-sizes", type=int, nargs="+", default=[1, 16, 64, 512])
    parser.add_argument("--decode", type=int, default=128)
    parser.add_argument("--threads", type=int, help="torch's CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    from inferi.pull import resolve_model
    print(line(benchmark(resolve_model(args.model), args.prompt_sizes, args.decode, args.device, args.threads)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
