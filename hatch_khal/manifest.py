"""The manifest: what the runtime needs to know about every kernel instance, without reading its source.

Entry points, the binding and push-constant layouts, the CUDA argument layout, the workgroup size, the device
features the kernel needs, and the sha256 of each artifact (checked when the runtime loads it). Beside the kernels,
`excluded` lists, per template kernel with an `exclude=` condition, the combinations of template values that it
left out (the generated `Family` refuses them with the condition in its message).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from khal_runtime import ir

from . import abi
from .lock import sha256
from .render.names import template_text

if TYPE_CHECKING:
    from .frontend import Exclusion

MANIFEST_VERSION = 1

# Artifact kinds and their file suffixes.
SUFFIX = {"glsl": ".comp", "cuda": ".cu", "spirv": ".spv", "ptx": ".ptx", "ir": ".kir.json"}


def kernel_id(module: str, kernel: ir.Kernel) -> str:
    """The instance's name in the package: "examples.add_assign.add_assign"."""
    return f"{module}.{kernel.name}"


def class_name(kernel: ir.Kernel) -> str:
    """The binding class: add_assign -> AddAssign; binary_op with T=f32, OP="add" -> BinaryOp_f32_add (each template
    value after an underscore, as written in the source)."""
    base = "".join(part[:1].upper() + part[1:] for part in kernel.function.split("_") if part)
    return "_".join([base, *(template_text(v) for v in kernel.template.values())])


def features(kernel: ir.Kernel) -> list[str]:
    """Device features the kernel needs, in khal's own names (each backend maps them to its own)."""
    types, uses = kernel.types(), kernel.uses()
    found = {"immediates"}
    if "f16" in types:
        found.add("f16")
    if "f64" in types:
        found.add("f64")
    if types & {"i64", "u64"}:
        found.add("i64")
    if any(name.startswith("subgroup") or name == "num_subgroups" for name in uses):
        found.add("subgroups")
    if "atomic_f32" in uses:
        found.add("atomic_f32")
    if uses & set(ir.ops.DOT_PRODUCTS):
        found.add("int_dot4")
    return sorted(found)


def shared_bytes(kernel: ir.Kernel) -> int:
    total = 0
    for t in kernel.shared.values():
        elem, shape = ir.parse_array(t)
        count = 1
        for n in shape:
            count *= n
        total += count * ir.SIZE[elem]
    return total


def entry(module: str, kernel: ir.Kernel, artifacts: dict[str, tuple[str, bytes]]) -> dict:
    """The manifest entry of one kernel; `artifacts` maps each kind to (path in the output folder, bytes)."""
    push_fields, push_size = abi.push_constants(kernel)
    cuda_fields, cuda_size = abi.cuda_params(kernel)
    return {
        "id": kernel_id(module, kernel),
        "module": module,
        "function": kernel.function,
        "class": class_name(kernel),
        "entry": {"spirv": "main", "ptx": kernel.name},
        "source": kernel.source,
        "line": kernel.line,
        "template": kernel.template,
        "params": kernel.params,
        "requires": [{"text": r.text, "line": r.line} for r in kernel.requires],
        "workgroup_size": list(kernel.workgroup_size),
        "buffers": [{"name": b.name, "elem": b.elem, "access": b.access, "binding": b.binding}
                    for b in kernel.buffers],
        "scalars": [{"name": s.name, "type": s.type} for s in kernel.scalars],
        "structs": {name: [list(f) for f in fields] for name, fields in kernel.structs.items()},
        "push_constants": {"size": push_size, "fields": push_fields,
                           "format": abi.pack_format(push_fields, push_size)},
        "cuda_params": {"size": cuda_size, "params": cuda_fields, "format": abi.pack_format(cuda_fields, cuda_size)},
        "shared_bytes": shared_bytes(kernel),
        "features": features(kernel),
        "artifacts": {kind: {"path": path, "sha256": sha256(data), "bytes": len(data)}
                      for kind, (path, data) in sorted(artifacts.items())},
    }


def family_id(module: str, function: str) -> str:
    """A template kernel's name in the package, for its family: "vortx.elementwise.binary"."""
    return f"{module}.{function}"


def exclusions(by_module: dict[str, list[Exclusion]]) -> dict[str, dict]:
    """The manifest's `excluded`: per template kernel with an `exclude=` condition, by family id."""
    return {family_id(module, e.function): {"condition": e.condition, "source": e.source, "line": e.line,
                                            "instances": e.instances}
            for module, found in sorted(by_module.items()) for e in found}


def render(package: str, entries: list[dict], excluded: dict[str, dict] | None = None) -> bytes:
    doc = {"khal_manifest": MANIFEST_VERSION, "package": package,
           "kernels": {e["id"]: e for e in entries}, "excluded": excluded or {}}
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
