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
"""

from __future__ import annotations

import sys
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.plugin import hookimpl

from .build import STAMP, Options, ensure_built, output_directory, refuse_collisions


class KhalBuildHook(BuildHookInterface):
    PLUGIN_NAME = "khal"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        options = Options.from_config(self.config, f"[tool.hatch.build.targets.wheel.hooks.{self.PLUGIN_NAME}]")
        root = Path(self.root)
        refuse_collisions(options, self.metadata.name)
        ensure_built(root, options, progress=sys.stderr.isatty())
        if version != "editable":
            for path in sorted(_existing(root, options)):
                build_data["force_include"][str(root / path)] = path


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
