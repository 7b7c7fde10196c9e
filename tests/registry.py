"""The registry of every kernel's differential-test case: the `CASES` of every module of `tests/cases/`, found by
listing the folder. `tests/test_differential.py` runs them all on every backend present, and checks that every
kernel of the manifest has a case."""

from __future__ import annotations

import importlib
import pkgutil

import cases


def discover() -> list:
    found = []
    for module in pkgutil.iter_modules(cases.__path__):
        found += importlib.import_module(f"cases.{module.name}").CASES
    return found


REGISTRY = discover()
