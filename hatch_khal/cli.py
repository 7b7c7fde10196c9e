"""`khal-gpu` (also `python -m hatch_khal`): build, check, inspect and clean the kernels of the project in the
current folder.

    khal-gpu build          compile every shader package into its _generated folder and update khal.lock
    khal-gpu check          rebuild into a temporary folder; fail, listing each difference, if it differs from the lock
    khal-gpu inspect KERNEL a kernel's GLSL, CUDA, IR, binding, sizes and features (a template kernel: its instances)
    khal-gpu clean          remove the generated folders (and, with --cache, the compile cache)
    khal-gpu info           backends, devices and features (from khal_runtime)

Options are read from pyproject.toml: [tool.hatch.build.targets.wheel.hooks.khal] (or the `custom` hook table that
this project uses for itself).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .build import (
    BuildError,
    Options,
    build,
    ensure_built,
    output_directory,
    refuse_collisions,
    toolchain_versions,
    up_to_date,
    write_outputs,
)
from .cache import Cache, default_directory
from .frontend import KernelCompileError
from .lock import LOCK_NAME, differences, read_lock, render_lock, sha256

try:
    import tomllib
except ImportError:                     # Python 3.10
    import tomli as tomllib


class UsageError(Exception):
    pass


def find_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    raise UsageError(f"no pyproject.toml in {start} or above it; run khal-gpu inside a project, or pass --root")


def read_pyproject(root: Path) -> dict:
    return tomllib.loads((root / "pyproject.toml").read_text())


def project_name(root: Path) -> str | None:
    """`[project].name` of the project at `root` (None where it has none)."""
    return read_pyproject(root).get("project", {}).get("name")


def read_options(root: Path) -> Options:
    doc = read_pyproject(root)
    hooks = doc.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {}).get("hooks", {})
    for name in ("khal", "custom"):
        table = hooks.get(name)
        if table is not None and (name == "khal" or "packages" in table):
            return Options.from_config(table, f"pyproject.toml [tool.hatch.build.targets.wheel.hooks.{name}]")
    raise UsageError(f"{root / 'pyproject.toml'} has no [tool.hatch.build.targets.wheel.hooks.khal] table; "
                     'add one, e.g.\n\n[tool.hatch.build.targets.wheel.hooks.khal]\npackages = ["shaders"]')


def show_progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def cmd_build(root: Path, options: Options, args) -> int:
    start = time.perf_counter()
    lock_path = root / LOCK_NAME
    if not args.force and up_to_date(root, options) and lock_matches_disk(root, lock_path):
        print(f"khal-gpu build: up to date ({time.perf_counter() - start:.2f} s)")
        return 0
    cache = Cache(None if args.no_cache else default_directory())
    files = build(root, options, cache, progress=show_progress(args))
    written = write_outputs(root, files, options)
    lock = render_lock(files, toolchain_versions(options), options.locked())
    if not lock_path.is_file() or lock_path.read_text() != lock:
        lock_path.write_text(lock)
        written.append(LOCK_NAME)
    kernels = sum(len(json.loads(data)["kernels"]) for path, data in files.items() if path.endswith("manifest.json"))
    print(f"khal-gpu build: {kernels} kernel instances, {len(files)} files, {len(written)} changed, "
          f"in {time.perf_counter() - start:.2f} s")
    return 0


def lock_matches_disk(root: Path, lock_path: Path) -> bool:
    """Whether every file of the lock is on disk with the hash the lock gives (a stale lock is rewritten)."""
    try:
        locked = read_lock(lock_path)["files"]
        return all(sha256((root / path).read_bytes()) == digest for path, digest in locked.items())
    except (OSError, ValueError, KeyError):
        return False


def cmd_check(root: Path, options: Options, args) -> int:
    lock_path = root / LOCK_NAME
    if not lock_path.is_file():
        print(f"khal-gpu check: {LOCK_NAME} is missing; run `khal-gpu build` and commit it", file=sys.stderr)
        return 1
    start = time.perf_counter()
    cache = Cache(None if args.no_cache else default_directory())
    files = build(root, options, cache, progress=show_progress(args))
    found = differences(read_lock(lock_path), files, toolchain_versions(options), options.locked())
    if not found:
        print(f"khal-gpu check: {len(files)} generated files match {LOCK_NAME} "
              f"({time.perf_counter() - start:.2f} s)")
        return 0
    folder = Path(tempfile.mkdtemp(prefix="khal-check-"))
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    print(f"khal-gpu check: the rebuild differs from {LOCK_NAME} in {len(found)} "
          f"place{'s' if len(found) > 1 else ''} "
          f"(rebuild kept in {folder}):", file=sys.stderr)
    for line in found:
        print(f"  {line}", file=sys.stderr)
    print("run `khal-gpu build` and commit the lock if the change is intended", file=sys.stderr)
    return 1


def _manifests(root: Path, options: Options) -> list[tuple[Path, dict]]:
    out = []
    for package in options.packages:
        path = root / output_directory(package, options) / "manifest.json"
        out.append((path.parent, json.loads(path.read_text())))
    return out


def cmd_inspect(root: Path, options: Options, args) -> int:
    ensure_built(root, options, progress=show_progress(args))
    manifests = _manifests(root, options)
    wanted = dict(_template_value(text) for text in args.template or ())
    matches = [(folder, entry) for folder, doc in manifests for kid, entry in doc["kernels"].items()
               if (kid == args.kernel or kid.endswith("." + args.kernel) or entry["class"] == args.kernel)
               and _has_template(entry, wanted)]
    if not matches:         # a template kernel, by its function's name: its instances, narrowed by --template
        family = [(folder, entry) for folder, doc in manifests for entry in doc["kernels"].values()
                  if args.kernel in (entry["function"], f"{entry['module']}.{entry['function']}")]
        matches = [(folder, entry) for folder, entry in family if _has_template(entry, wanted)]
        if family and not matches:
            raise UsageError(describe_family(args.kernel, family, [], wanted))
        if len(matches) > 1:
            print(describe_family(args.kernel, family, [entry for _, entry in matches], wanted))
            return 0
    if len(matches) != 1:
        every = sorted(e["id"] for _, d in manifests for e in d["kernels"].values())
        what = "no kernel" if not matches else f"{len(matches)} kernels"
        with_template = "".join(f" {k}={v}" for k, v in wanted.items())
        raise UsageError(f"{what} named {args.kernel!r}{' with' + with_template if wanted else ''}; "
                         + ("be more specific: " + ", ".join(e["id"] for _, e in matches) if matches else
                            "the kernels are:\n  " + "\n  ".join(every)))
    folder, entry = matches[0]
    print(describe(entry))
    sections = args.only or ["binding", "glsl", "cuda", "ir"]
    for section in sections:
        print(f"\n--- {section} " + "-" * (100 - len(section)))
        print(section_text(folder, entry, section).rstrip())
    return 0


def _template_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--template {text!r}: write NAME=VALUE, e.g. --template T=f32")
    return name, value


def _has_template(entry: dict, wanted: dict[str, str]) -> bool:
    return all(str(entry["template"].get(name)) == value for name, value in wanted.items())


def describe_family(name: str, family: list[tuple[Path, dict]], chosen: list[dict], wanted: dict[str, str]) -> str:
    """The instances of the template kernel(s) called `name`, those matching --template marked."""
    first = family[0][1]
    lines = [f"{name}: a template kernel ({first['source']}:{first['line']}) with {len(family)} instance"
             f"{'s' if len(family) > 1 else ''}:"]
    for _, entry in family:
        values = ", ".join(f"{k}={v}" for k, v in entry["template"].items())
        lines.append(f"  {'*' if wanted and entry in chosen else ' '} {entry['id']}  (class {entry['class']}"
                     f"{': ' + values if values else ''})")
    if wanted and not chosen:
        lines.append("no instance has " + ", ".join(f"{k}={v}" for k, v in wanted.items()))
    lines.append(f"show one with `khal-gpu inspect {first['class']}` (an id or a class), or narrow the list "
                 "with --template NAME=VALUE")
    return "\n".join(lines)


def describe(entry: dict) -> str:
    size = "x".join(map(str, entry["workgroup_size"]))
    lines = [f"{entry['id']}  (class {entry['class']}, {entry['source']}:{entry['line']})",
             f"  template: {entry['template'] or '-'}", f"  workgroup size: {size}",
             f"  shared memory: {entry['shared_bytes']} bytes", f"  features: {', '.join(entry['features'])}"]
    for b in entry["buffers"]:
        lines.append(f"  binding {b['binding']}: {b['name']}: {b['elem']} ({b['access']})")
    push = entry["push_constants"]
    lines.append(f"  push constants: {push['size']} bytes: " +
                 ", ".join(f"{f['name']}@{f['offset']}" for f in push["fields"]))
    lines.append(f"  CUDA arguments: {entry['cuda_params']['size']} bytes")
    lines += [f"  {kind}: {a['path']} ({a['bytes']} bytes, sha256 {a['sha256'][:16]})"
              for kind, a in entry["artifacts"].items()]
    return "\n".join(lines)


def section_text(folder: Path, entry: dict, section: str) -> str:
    artifacts = entry["artifacts"]
    if section == "binding":
        stub = (folder / (entry["module"].replace(".", "/") + ".pyi")).read_text()
        start = stub.index(f"class {entry['class']}(")
        end = stub.find("\n\n\n", start)
        return stub[start:end if end >= 0 else None]
    if section == "spirv":
        from .toolchains import spirv_tools
        return spirv_tools.disassemble((folder / artifacts["spirv"]["path"]).read_bytes())
    if section == "ir":
        return json.dumps(json.loads((folder / artifacts["ir"]["path"]).read_text()), indent=1)
    if section not in artifacts:
        return f"(not built: the {section} target is not enabled)"
    return (folder / artifacts[section]["path"]).read_text()


def cmd_clean(root: Path, options: Options, args) -> int:
    for package in options.packages:
        out = root / output_directory(package, options)
        if out.is_dir():
            shutil.rmtree(out)
            print(f"khal-gpu clean: removed {out.relative_to(root)}")
    if args.cache and default_directory().is_dir():
        shutil.rmtree(default_directory())
        print(f"khal-gpu clean: removed the cache {default_directory()}")
    return 0


def cmd_info() -> int:
    from khal_runtime.__main__ import main as info
    return info([])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="khal-gpu", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, help="the project folder (default: where pyproject.toml is)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    b = sub.add_parser("build", help="compile the shader packages and update khal.lock")
    b.add_argument("--force", action="store_true", help="rebuild even when up to date")
    b.add_argument("--no-cache", action="store_true", help="compile everything, ignoring the compile cache")
    c = sub.add_parser("check", help="rebuild and compare with khal.lock")
    c.add_argument("--no-cache", action="store_true", help="compile everything, ignoring the compile cache")
    i = sub.add_parser("inspect", help="show one kernel's sources, IR, binding, sizes and features")
    i.add_argument("kernel", help="a kernel id (examples.add_assign.add_assign), its last part, or its class; a "
                   "template kernel's function name lists its instances")
    i.add_argument("-t", "--template", action="append", metavar="NAME=VALUE",
                   help="pick a template kernel's instance by its template values (repeatable)")
    i.add_argument("--only", action="append", choices=["binding", "glsl", "cuda", "ir", "spirv", "ptx"],
                   help="show only these sections (repeatable); spirv is disassembled")
    cl = sub.add_parser("clean", help="remove the generated folders")
    cl.add_argument("--cache", action="store_true", help="also empty the compile cache")
    sub.add_parser("info", help="list backends, devices and features")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "info":
            return cmd_info()
        root = (args.root or find_root(Path.cwd())).resolve()
        options = read_options(root)
        if args.command != "clean":
            refuse_collisions(options, project_name(root))
        command = {"build": cmd_build, "check": cmd_check, "inspect": cmd_inspect, "clean": cmd_clean}
        return command[args.command](root, options, args)
    except (KernelCompileError, BuildError, UsageError) as e:
        print(f"khal-gpu {args.command}: {e}" if not isinstance(e, KernelCompileError) else str(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
