"""Whether a generated package was built from the shader sources beside it: the check its `__init__.py` runs.

An editable install imports the generated package from the source tree, so a kernel edited after the build would
run as it was compiled, without a word. The build leaves a stamp in each output folder (`.khal-stamp`, JSON,
never in a wheel or the lock) that records every source file of the shader package with its size, modification
time and sha256; importing the generated package compares the sources with it, and warns (StaleBuildWarning)
naming the files that changed and the command that rebuilds them.

Cheap where it runs: a stat of each source, a hash only of those whose size or time disagree. Where there is no
stamp (an installed wheel, whose sources cannot change) it costs one failed open. This module is the runtime's,
and the build (`hatch_khal.build`) writes the stamp with `source_record`, so that both list the sources alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings

STAMP = ".khal-stamp"
STAMP_VERSION = 1


class StaleBuildWarning(UserWarning):
    """The shader sources changed since the build of the generated package being imported."""


def shader_sources(package_dir: str, output: str) -> list[str]:
    """The `.py` files of a shader package (what its build reads), as sorted paths relative to `package_dir`:
    its output folder, caches and hidden folders aside."""
    skip = output.replace("\\", "/").split("/")[0]
    found = []
    for folder, subfolders, files in os.walk(package_dir):
        subfolders[:] = [d for d in subfolders if d != skip and d != "__pycache__" and not d.startswith(".")]
        rel = os.path.relpath(folder, package_dir)
        found += [name if rel == "." else f"{rel}/{name}".replace(os.sep, "/") for name in files
                  if name.endswith(".py")]
    return sorted(found)


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def source_record(package_dir: str, output: str) -> dict[str, list]:
    """Each source of a shader package: [size, mtime in ns, sha256]; what the stamp records."""
    record = {}
    for rel in shader_sources(package_dir, output):
        path = os.path.join(package_dir, rel)
        info = os.stat(path)
        record[rel] = [info.st_size, info.st_mtime_ns, _sha256(path)]
    return record


def stamp_text(build: str, package: str, output: str, package_dir: str) -> str:
    """The stamp of a build: its input hash `build` (the build's no-op check) and the record of the sources."""
    doc = {"khal_stamp": STAMP_VERSION, "build": build, "package": package, "output": output,
           "sources": source_record(package_dir, output)}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def read_stamp(output_dir: str) -> dict | None:
    """The stamp in an output folder; None where there is none (a wheel) or it is of another version."""
    try:
        with open(os.path.join(output_dir, STAMP)) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("khal_stamp") == STAMP_VERSION else None


def _up(folder: str, levels: int) -> str:
    return os.path.normpath(os.path.join(folder, *[os.pardir] * levels))


def _package_dir(output_dir: str, stamp: dict) -> str:
    return _up(output_dir, len(stamp["output"].strip("/").split("/")))


def changed_sources(output_dir: str, stamp: dict) -> list[str]:
    """What changed since the stamp: "path (changed)", "(new)" or "(removed)", paths relative to the project."""
    output, package = stamp["output"], stamp["package"]
    package_dir = _package_dir(output_dir, stamp)
    recorded: dict[str, list] = stamp["sources"]
    current = shader_sources(package_dir, output)
    shown = package.replace(".", "/") + "/"
    changes = [f"{shown}{rel} (new)" for rel in current if rel not in recorded]
    present = set(current)
    changes += [f"{shown}{rel} (removed)" for rel in recorded if rel not in present]
    for rel in current:
        if rel in recorded:
            size, mtime, digest = recorded[rel]
            path = os.path.join(package_dir, rel)
            info = os.stat(path)
            if (info.st_size, info.st_mtime_ns) != (size, mtime) and _sha256(path) != digest:
                changes.append(f"{shown}{rel} (changed)")
    return sorted(changes)


def warn_if_stale(name: str, init_file: str) -> None:
    """Called by a generated package's `__init__.py` with its `__name__` and `__file__`: a StaleBuildWarning if
    its shader sources changed since the build that wrote it."""
    output_dir = os.path.dirname(os.path.abspath(init_file))
    stamp = read_stamp(output_dir)
    # imported under another name, the folder was copied away from the sources it records: nothing to compare
    if stamp is None or name != f"{stamp['package']}.{stamp['output'].strip('/').replace('/', '.')}":
        return
    changes = changed_sources(output_dir, stamp)
    if changes:
        package = stamp["package"]
        root = _up(_package_dir(output_dir, stamp), package.count(".") + 1)
        listed = ", ".join(changes[:5]) + (f" and {len(changes) - 5} more" if len(changes) > 5 else "")
        warnings.warn(StaleBuildWarning(
            f"the kernels of {package}.{stamp['output'].replace('/', '.')} were compiled before their sources "
            f"changed ({listed}): they run as they were compiled. Rebuild them with `khal-gpu build` (or `python -m "
            f"hatch_khal build`) in {root}, or reinstall the project"), stacklevel=2)
