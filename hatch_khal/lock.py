"""The lock file: the sha256 of every generated file and the versions of the toolchains that made them.

It is committed with the sources. `khal build` rewrites it; `khal check` rebuilds into a temporary folder and
lists every difference between that rebuild and the lock.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

LOCK_NAME = "khal.lock"
LOCK_VERSION = 1


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def render_lock(files: dict[str, bytes], toolchains: dict[str, str], options: dict) -> str:
    doc = {
        "khal_lock": LOCK_VERSION,
        "toolchains": toolchains,
        "options": options,
        "files": {path: sha256(data) for path, data in sorted(files.items())},
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def read_lock(path: Path) -> dict:
    doc = json.loads(path.read_text())
    if doc.get("khal_lock") != LOCK_VERSION:
        raise ValueError(f"{path} is not a khal lock file of version {LOCK_VERSION}")
    return doc


def differences(lock: dict, files: dict[str, bytes], toolchains: dict[str, str], options: dict) -> list[str]:
    """Human-readable differences between a lock and a fresh build; empty when they agree."""
    out = []
    for name in sorted(set(lock["toolchains"]) | set(toolchains)):
        old, new = lock["toolchains"].get(name), toolchains.get(name)
        if old != new:
            out.append(f"toolchain {name}: locked {old}, this machine has {new}")
    if lock.get("options") != options:
        out.append(f"options: locked {lock.get('options')}, the build used {options}")
    locked = lock["files"]
    for path in sorted(set(locked) | set(files)):
        if path not in files:
            out.append(f"missing from the rebuild: {path}")
        elif path not in locked:
            out.append(f"not in the lock: {path}")
        elif sha256(files[path]) != locked[path]:
            out.append(f"differs: {path} (locked {locked[path][:12]}, rebuilt {sha256(files[path])[:12]})")
    return out
