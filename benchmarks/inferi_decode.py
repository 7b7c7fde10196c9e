"""`python -m benchmarks.inferi_decode [MODEL]`: load time, prompt and decode tokens/s of a GGUF model on each
backend present (default: SmolLM2-135M-Instruct, pulled on first use), greedy, and the greedy answer to the
capital-of-France question in the chat template, which must begin "The capital of France is Paris.".

Prompt processing is timed on 1, 16, 64 and 512 tokens from a fresh cache (`--prompt-sizes`); decoding on
`--decode` tokens after a short prompt, as a mean over the run (each token: one replay of the captured step and
the sampling). Sizes shrink on CPU devices so that the run stays short there. `--transformers` adds the baseline
of benchmarks/transformers_decode.py (PyTorch eager, float32, on CUDA if torch sees a GPU) to the same run and
table, at the full sizes.
"""

from __future__ import annotations

import argparse

import inferi
from inferi.bench import decode_speed, on_cpu, prompt_speed, weight_bytes
from inferi.sampling import SamplingParams
from khal_runtime import BackendError

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?")
    parser.add_argument("--backend", action="append", choices=("cuda", "webgpu", "cpu"))
    parser.add_argument("--prompt-sizes", type=int, nargs="+", default=[1, 16, 64, 512])
    parser.add_argument("--decode", type=int, default=128)
    parser.add_argument("--ctx", type=int, default=1024, help="the KV cache's tokens (default 1024)")
    parser.add_argument("--transformers", action="store_true", help="add transformers on the same file as the "
                                                                     "baseline")
    args = parser.parse_args(argv)
    rows = []
    for kind in args.backend or ["cuda", "webgpu", "cpu"]:
        try:
            model = inferi.load_model(args.model, backend=kind, context_length=args.ctx, progress=False)
        except BackendError as e:
            print(f"{kind}: skipped ({e})")
            continue
        cpu = on_cpu(model)
        answer = "".join(model.chat(QUESTION, SamplingParams(temperature=0, max_tokens=12)))
        sizes = [n for n in args.prompt_sizes if not cpu or n <= 16]
        prompt = {n: prompt_speed(model, n) for n in sizes}
        produced = 8 if cpu else args.decode
        decode = decode_speed(model, produced)
        weights = weight_bytes(model)
        rows.append((model.device.backend.device_name, kind, model.load_seconds, prompt, decode, produced,
                     decode * weights / 1e9, answer))
        print(f"{kind}: {model.device.backend.device_name}: load {model.load_seconds:.2f} s, "
              + ", ".join(f"pp{n} {s:,.0f} t/s" for n, s in prompt.items())
              + f", tg{produced} {decode:,.1f} t/s ({decode * weights / 1e9:.0f} GB/s of weights); "
              f"answer {answer!r}", flush=True)
    if args.transformers:
        from inferi.pull import resolve_model

        from .transformers_decode import BaselineUnavailable, benchmark, line
        try:
            b = benchmark(resolve_model(args.model), args.prompt_sizes, args.decode)
        except BaselineUnavailable as e:
            print(f"transformers: skipped ({e})")
        else:
            print(line(b), flush=True)
            rows.append((b.device, "transformers (eager f32)", b.load_seconds, b.prompt, b.decode, b.produced,
                         b.decode * b.weight_bytes / 1e9, b.answer))
    print("\n| device | backend | load | prompt tokens/s | decode tokens/s | weights GB/s | answer |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for device, kind, load, prompt, decode, produced, gbps, answer in rows:
        pp = ", ".join(f"pp{n} {s:,.0f}" for n, s in prompt.items())
        print(f"| {device} | {kind} | {load:.2f} s | {pp} | tg{produced} {decode:,.1f} | {gbps:.0f} | {answer!r} |")


if __name__ == "__main__":
    main()
