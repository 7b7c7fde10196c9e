"""`python examples/demo.py`: the example kernels on every backend this machine has, checked against numpy.

Each example of `shaders/examples` runs once, at the largest size of its differential test case
(`tests/cases/examples.py`: inputs, a numpy reference and the grid), on CUDA, WebGPU and the CPU interpreter in
turn; a backend that is missing is named with the reason. The exit status is 1 if any result differs from numpy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]        # the shader package's source tree and the test cases

from cases.examples import CASES  # noqa: E402

from khal_runtime import testing  # noqa: E402
from khal_runtime.backends import KINDS, create  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python examples/demo.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=KINDS, action="append", help="only these backends (repeatable)")
    args = parser.parse_args(argv)
    failures = 0
    for kind in args.backend or KINDS:
        try:
            backend = create(kind)
        except Exception as e:              # a missing driver or library: say so and go on
            print(f"{kind}: not available ({e})\n")
            continue
        print(f"{kind}: {backend.device_name}")
        for case in CASES:
            n = max(case.sizes)
            start = time.perf_counter()
            problems = testing.check(case, backend, case.rng(), n)
            seconds = time.perf_counter() - start
            failures += bool(problems)
            verdict = "matches numpy" if not problems else "DIFFERS: " + "; ".join(problems)
            print(f"  {case.id.split('.', 1)[1]:42} n={n:<6} {seconds * 1e3:8.1f} ms  {verdict}")
        print()
    print("all results match numpy" if not failures else f"{failures} kernels differ from numpy")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
