"""A content-addressed cache of compiled artifacts, so that an unchanged rebuild compiles nothing.

The key of an entry is the sha256 of everything that determines its bytes: the target, the generated source, the
toolchain versions and the compile options. Entries are written atomically (temporary file, then rename), so
parallel builds can share the cache. Location: $KHAL_CACHE_DIR, else $XDG_CACHE_HOME/khal, else ~/.cache/khal.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def default_directory() -> Path:
    if os.environ.get("KHAL_CACHE_DIR"):
        return Path(os.environ["KHAL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "khal"


def key(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


class Cache:
    def __init__(self, directory: Path | None):
        self.directory = directory          # None disables the cache

    def _path(self, k: str) -> Path:
        return self.directory / k[:2] / k

    def get(self, k: str) -> bytes | None:
        if self.directory is None:
            return None
        try:
            return self._path(k).read_bytes()
        except OSError:
            return None

    def put(self, k: str, data: bytes) -> None:
        if self.directory is None:
            return
        path = self._path(k)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            pass                            # a read-only or full cache only costs speed
