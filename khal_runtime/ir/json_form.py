"""The IR's JSON form (`.kir.json`): deterministic text of a kernel, and the kernel back from it. Nodes become
objects with a "node" key naming their class; non-finite floats become the strings "inf", "-inf" and "nan"."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from .nodes import NODES, Buffer, Const, Function, Kernel, Requirement, Scalar

IR_VERSION = 1


def _encode(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {"node": type(obj).__name__} if type(obj).__name__ in NODES else {}
        for f in dataclasses.fields(obj):
            out[f.name] = _encode(getattr(obj, f.name))
        return out
    if isinstance(obj, (list, tuple)):
        return [_encode(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def _decode_node(d: dict) -> Any:
    cls = NODES[d["node"]]
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        v = d[f.name]
        if f.name == "loc":
            v = tuple(v)
        elif f.name == "value" and cls is Const:
            v = float(v) if isinstance(v, str) else v
        else:
            v = _decode(v)
        kwargs[f.name] = v
    return cls(**kwargs)


def _decode(v: Any) -> Any:
    if isinstance(v, dict) and "node" in v:
        return _decode_node(v)
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def to_json(kernel: Kernel) -> str:
    """Deterministic JSON text of a kernel (sorted keys, no whitespace variance)."""
    doc = {"khal_ir": IR_VERSION, **_encode(kernel)}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"


def from_json(text: str) -> Kernel:
    doc = json.loads(text)
    if doc.pop("khal_ir", None) != IR_VERSION:
        raise ValueError(f"not a khal IR document of version {IR_VERSION}")
    return Kernel(
        name=doc["name"], source=doc["source"], line=doc["line"], function=doc["function"],
        template=doc["template"], workgroup_size=tuple(doc["workgroup_size"]),
        buffers=[Buffer(**b) for b in doc["buffers"]],
        scalars=[Scalar(**s) for s in doc["scalars"]],
        structs={k: [tuple(f) for f in v] for k, v in doc["structs"].items()},
        shared=doc["shared"], locals=doc["locals"], body=_decode(doc["body"]),
        functions=[Function(name=f["name"], params=[Scalar(**p) for p in f["params"]], ret=f["ret"],
                            locals=f["locals"], body=_decode(f["body"]), line=f["line"],
                            source=f.get("source", ""))
                   for f in doc["functions"]],
        requires=[Requirement(**r) for r in doc.get("requires", [])], params=doc.get("params", []),
    )
