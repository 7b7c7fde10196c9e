"""`python -m khal_runtime` (also `khal-gpu info`): the backends this machine offers, their devices and features."""

from __future__ import annotations

import sys

from .backends import KINDS, create


def main(argv: list[str] | None = None) -> int:
    found = 0
    for kind in KINDS:
        try:
            backend = create(kind)
        except Exception as e:              # a missing driver or library: report and go on
            print(f"{kind:7} unavailable: {e}")
            continue
        found += 1
        info = backend.describe()
        print(f"{kind:7} {info.pop('device')}")
        info.pop("backend", None)
        for key, value in info.items():
            shown = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            print(f"        {key}: {shown}")
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
