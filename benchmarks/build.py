"""`python -m benchmarks.build`: how long the build of the project's shader packages takes.

Prints the full build (every kernel compiled, no cache), a rebuild from the cache, and the no-op rebuild as a user
runs it (`khal-gpu build` in a new process on an unchanged tree; target: under 1 s). Run it in the project folder.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from hatch_khal.build import build, write_outputs
from hatch_khal.cache import Cache, default_directory
from hatch_khal.cli import find_root, read_options


def main() -> int:
    root = find_root(Path.cwd())
    options = read_options(root)
    start = time.perf_counter()
    files = build(root, options, Cache(None))
    full = time.perf_counter() - start
    kernels = sum(1 for p in files if "/kernels/" in p and p.endswith(".kir.json"))
    compiled = sum(1 for p in files if p.endswith((".spv", ".ptx")))

    write_outputs(root, files, options)
    start = time.perf_counter()
    build(root, options, Cache(default_directory()))
    cached = time.perf_counter() - start

    command = [sys.executable, "-m", "hatch_khal", "-q", "build"]
    subprocess.run(command, cwd=root, check=True, capture_output=True)        # writes the lock if it was stale
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run(command, cwd=root, check=True, capture_output=True)
        runs.append(time.perf_counter() - start)
    noop = sorted(runs)[len(runs) // 2]

    print(f"shader packages: {', '.join(options.packages)}: {kernels} kernel instances, {len(files)} files, "
          f"{compiled} SPIR-V and PTX artifacts")
    print(f"full build, no cache (in process):   {full:6.2f} s")
    print(f"rebuild from the cache (in process): {cached:6.2f} s")
    print(f"no-op `khal-gpu build` (new process): {noop:6.2f} s   (median of 5; target < 1 s: "
          f"{'met' if noop < 1 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
