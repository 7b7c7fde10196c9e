"""This project's own Hatch build hook: the `khal` hook it ships, loaded from the source tree.

A project that uses khal names the hook `khal` and lists `khal-gpu[build]` in its build requirements; khal itself
cannot (it is the package being built), so hatchling loads this file as a custom hook instead.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hatch_khal.plugin import KhalBuildHook  # noqa: E402


class SourceTreeKhalHook(KhalBuildHook):
    PLUGIN_NAME = "custom"


def get_build_hook():
    return SourceTreeKhalHook
