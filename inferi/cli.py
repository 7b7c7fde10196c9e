"""The `inferi` command line (console script `inferi`, or `python -m inferi`).

    inferi inspect model.gguf          # metadata (long arrays summarised) and the tensor table, with totals

Each subcommand is an `add_<name>(subparsers)` function listed in COMMANDS: it registers its parser and sets
`run`, a function of the parsed arguments that returns the exit status. main() turns the errors a user can cause
(a bad GGUF file, a missing file) into `inferi: error: <message>` on stderr and exit status 2, as argparse does
for bad arguments, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from inferi import cli_generate
from inferi.gguf import GGUFFile, read_gguf
from inferi.pull import PullError
from khal_runtime.backends.base import BackendError

# what a user can get wrong (rather than a bug of ours): reported as one line, exit status 2. inferi's own errors
# about files, metadata, weights, tokenizers, templates, contexts and sampling flags are all ValueErrors.
USER_ERRORS = (ValueError, OSError, PullError, BackendError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inferi", description="GGUF language models on khal.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:          # an OSError too, but ours: the reader went away (`inferi inspect m | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())     # and Python's flush at exit stays quiet
        return 1
    except USER_ERRORS as e:
        parser.exit(2, f"inferi: error: {_error_text(e)}\n")


def _error_text(e: Exception) -> str:
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror or e}"
    return str(e)


# ---- inspect ----

def add_inspect(subparsers) -> None:
    p = subparsers.add_parser("inspect", help="show a GGUF file's metadata and tensor table",
                              description="Show a GGUF file's metadata (long arrays summarised) and tensor table.")
    p.add_argument("file", help="a .gguf file")
    p.add_argument("--items", type=int, default=5, metavar="N", help="array elements shown per key (default 5)")
    p.set_defaults(run=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    with read_gguf(args.file) as f:
        print("\n".join(inspect_lines(f, items=max(args.items, 0))))
    return 0


def inspect_lines(f: GGUFFile, items: int = 5) -> list[str]:
    lines = [f"{f.path}: GGUF version {f.version}, {f.size:,} bytes, alignment {f.alignment}, "
             f"tensor data from byte {f.data_offset:,}", "", f"metadata ({len(f.metadata)} keys):"]
    width = max((len(_shown(k)) for k in f.metadata), default=0)
    for key, value in f.metadata.items():
        vtypes = f.types[key]
        kind = f"[{vtypes[1].name}; {len(value)}]" if isinstance(value, list | np.ndarray) else vtypes[0].name
        lines.append(f"  {_shown(key):<{width}}  {kind:<16} {_value_text(value, items)}")
    infos = list(f.tensors.values())
    lines += ["", f"tensors ({len(infos)}):"]
    if infos:
        rows = [(_shown(t.name), t.type.name, " x ".join(map(str, t.shape)) or "scalar", f"{t.nbytes:,}")
                for t in infos]
        widths = [max(len(r[i]) for r in [("name", "type", "shape", "bytes"), *rows]) for i in range(4)]
        for row in [("name", "type", "shape", "bytes"), *rows]:
            lines.append("  " + "  ".join([*(c.ljust(w) for c, w in zip(row[:3], widths)), row[3].rjust(widths[3])]))
    total = sum(t.nbytes for t in infos)
    by_type = ", ".join(f"{n} {name}" for name, n in Counter(t.type.name for t in infos).most_common())
    lines += ["", f"total: {len(infos)} tensors, {sum(t.n_elements for t in infos):,} parameters, {total:,} bytes "
                  f"({total / 2**20:.1f} MiB)" + (f"; by type: {by_type}" if infos else "")]
    return lines


def _shown(text: str) -> str:
    """Keys and names as they are when printable; escaped otherwise, so that a file cannot drive the terminal."""
    return text if text.isprintable() else repr(text)


def _value_text(value: object, items: int) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else f"{value[:60]!r}... ({len(value):,} characters)"
    if isinstance(value, np.ndarray):
        return _list_text(value[:items].tolist(), len(value), items)
    if isinstance(value, list):
        shown = [_value_text(v, items) if isinstance(v, np.ndarray | list) else v for v in value[:items]]
        return _list_text(shown, len(value), items, quote=not value or isinstance(value[0], str))
    return repr(value)


def _list_text(shown: list, count: int, items: int, quote: bool = True) -> str:
    parts = [repr(v) if quote or not isinstance(v, str) else v for v in shown[:items]]
    return "[" + ", ".join(parts) + (f", ... ({count:,} in all)" if count > items else "") + "]"


COMMANDS: list[Callable] = [add_inspect, *cli_generate.COMMANDS]
