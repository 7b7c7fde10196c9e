"""The Hatch build hook `khal`: compiles the configured shader packages and puts the output in the wheel.

    [build-system]
    requires = ["hatchling", "khal-gpu[build]"]

    [tool.hatch.build.targets.wheel.hooks.khal]
    packages = ["my_shaders"]          # shader packages (folders of kernel modules)
    targets = ["webgpu", "cuda", "cpu"] # SPIR-V, PTX, IR (the default: all three)
    cuda-arch = "compute_75"            # the virtual architecture PTX is compiled for
    optimize = true                     # SPIRV-Tools performance passes
    output = "_generated"               # folder inside each package

The output is written into the source tree (an editable install imports it from there) and, for a regular
wheel, every generated file is added to the wheel explicitly (it is git-ignored, so hatchling would skip it).
A shader package whose import name another installed distribution owns is refused. A kernel compile error or a
BuildError ends the build with its message alone (file, line, column and caret first, no traceback), since pip
shows the backend's output as the failure.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.plugin import hookimpl

from khal_runtime.freshness import STAMP

from .build import BuildError, Options, ensure_built, output_directory, refuse_collisions
from .frontend import KernelCompileError


class KhalBuildHook(BuildHookInterface):
    PLUGIN_NAME = "khal"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        try:
            options = Options.from_config(self.config, f"[tool.hatch.build.targets.wheel.hooks.{self.PLUGIN_NAME}]")
            refuse_collisions(options, self.metadata.name)
            ensure_built(root, options, progress=sys.stderr.isatty())
        except KernelCompileError as e:
            # pip and build print the backend's output: the located message must come first, not after about 60
            # lines of traceback through hatchling and this hook
            raise SystemExit(str(e)) from None
        except BuildError as e:
            raise SystemExit(f"khal: {e}") from None
        if version != "editable":
            for path in sorted(_existing(root, options)):
                build_data["force_include"][str(root / path)] = path
            # The stamps record this checkout's source files and times (for `up_to_date` and the editable freshness
            # check): no wheel needs them, and the wheel's bytes would depend on the checkout. hatchling would add
            # them where the output folder is not git-ignored, so they leave the tree until the wheel is written.
            self._stamps = {path: path.read_bytes() for path in _stamps(root, options) if path.is_file()}
            for path in self._stamps:
                path.unlink()

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        stamps, self._stamps = getattr(self, "_stamps", {}), {}
        for path, data in stamps.items():
            path.write_bytes(data)


def _stamps(root: Path, options: Options) -> list[Path]:
    return [root / output_directory(package, options) / STAMP for package in options.packages]


def _existing(root: Path, options: Options) -> list[str]:
    """The generated files in the output folders (what the build wrote: not its stamp or Python's caches)."""
    out = []
    for package in options.packages:
        folder = root / output_directory(package, options)
        out += [p.relative_to(root).as_posix() for p in folder.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.name != STAMP]
    return out


@hookimpl
def hatch_register_build_hook():
    return KhalBuildHook
