"""Template families: every compiled instance of one template kernel, and the choice of one by its template values.

A kernel written over templates (`T = template(f32, i32)`, `OP = template(add, max)`) compiles to one binding
class per combination of values; the generated module exports the classes and, per template kernel, a `Family`:

    from shaders._generated.vortx.elementwise import BINARY

    cls = BINARY.pick(T=f32, OP="add")          # a type or its name ("f32"), a function or its name, numbers...
    cls(backend).call(pass_, grid, ...)

`pick` is a dictionary look-up when the values are given as they are stored (type and function names, strings,
numbers), and a mistake is a `KernelArgumentError` that lists the values there are; a combination that the
kernel's `exclude=` condition left out is refused with that condition. The generated stub types each instance's
`pick(...)` with literal values, so that a type checker knows which class (and which `call` signature) it gives.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

import numpy as np

from .buffers import element_type
from .kernels import Kernel, KernelArgumentError

K = TypeVar("K", bound=Kernel)

SHOWN = 12          # instances listed in an error, at most


def template_value(value: Any) -> Any:
    """A template value as the manifest stores it: an element type (f32, np.float32, a numpy dtype) by its IR
    name, a function (a shader module's helper, `max`) by its name, anything else as it is."""
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return value.__name__
    if isinstance(value, np.dtype) or isinstance(value, type) and (hasattr(value, "ir") or
                                                                    issubclass(value, np.generic)):
        try:
            return element_type(value).ir
        except TypeError:
            return value
    return value


class Family(Generic[K]):
    """The instances of one template kernel (`name`: its module and function), iterable like a tuple. `excluded`:
    the combinations of template values (some or all of the parameters) that the kernel's `exclude=` condition,
    `condition` as written with its place in the source, left out."""

    def __init__(self, name: str, members: tuple[type[K], ...], excluded: tuple[Mapping[str, Any], ...] = (),
                 condition: str = ""):
        if not members:
            raise ValueError(f"the template family {name} has no instances")
        self.name, self.members = name, tuple(members)
        self.excluded, self.condition = tuple(dict(e) for e in excluded), condition
        names = tuple(members[0].TEMPLATE)
        # each template parameter with its values, in the order the instances were compiled
        self.params: dict[str, tuple] = {p: tuple(dict.fromkeys(m.TEMPLATE[p] for m in members)) for p in names}
        self._index: dict[tuple, type[K]] = {tuple(m.TEMPLATE[p] for p in names): m for m in members}

    def pick(self, **template: Any) -> type[K]:
        """The instance compiled with these template values (all of them, by name)."""
        if len(template) == len(self.params):
            try:
                found = self._index.get(tuple([template[p] for p in self.params]))
            except (KeyError, TypeError):           # a parameter of another name; an unhashable value
                found = None
            if found is not None:
                return found
        return self._pick_slowly(template)

    def _pick_slowly(self, template: dict[str, Any]) -> type[K]:
        """`pick` for values spelled otherwise than stored (a type for its name), or an error saying what exists."""
        unknown = [p for p in template if p not in self.params]
        missing = [p for p in self.params if p not in template]
        if unknown or missing:
            problems = ([f"unknown {', '.join(unknown)}"] if unknown else []) + \
                       ([f"missing {', '.join(missing)}"] if missing else [])
            raise KernelArgumentError(f"{self.name}: the template parameters are {', '.join(self.params)} "
                                      f"({'; '.join(problems)})")
        values = {p: template_value(template[p]) for p in self.params}
        for p, v in values.items():
            try:
                known = v in self.params[p]
            except (TypeError, ValueError):         # values that do not compare to a bool (numpy arrays)
                known = False
            if not known:
                raise KernelArgumentError(f"{self.name} has no instance with {p}={v!r}; {p} is one of "
                                          f"{', '.join(map(repr, self.params[p]))}")
        found = self._index.get(tuple(values.values()))
        if found is None and any(all(values[p] == v for p, v in e.items()) for e in self.excluded):
            *fixed, last = self.params
            others = self.values(last, **{p: values[p] for p in fixed})
            there = f"; with {', '.join(f'{p}={values[p]!r}' for p in fixed)} {last} is one of " \
                    f"{', '.join(map(repr, others))}" if fixed and others else ""
            raise KernelArgumentError(f"{self.name} excludes {', '.join(f'{p}={v!r}' for p, v in values.items())}: "
                                      f"its exclude= condition {self.condition} holds for it{there}")
        if found is None:
            instances = ["(" + ", ".join(f"{p}={v!r}" for p, v in m.TEMPLATE.items()) + ")"
                         for m in self.members[:SHOWN]]
            more = f" and {len(self.members) - SHOWN} more" if len(self.members) > SHOWN else ""
            wanted = ", ".join(f"{p}={v!r}" for p, v in values.items())
            raise KernelArgumentError(f"{self.name} was not compiled for {wanted}: the instances are "
                                      f"{', '.join(instances)}{more}")
        try:
            self._index[tuple(template[p] for p in self.params)] = found       # this spelling is fast next time
        except TypeError:
            pass
        return found

    def values(self, param: str, **fixed: Any) -> tuple:
        """The values of template parameter `param` among the instances that have the `fixed` values (as `pick`
        takes them): `BINARY.values("T", OP="div")` is `("f32",)`."""
        if param not in self.params or any(p not in self.params for p in fixed):
            unknown = [p for p in (param, *fixed) if p not in self.params]
            raise KernelArgumentError(f"{self.name}: the template parameters are {', '.join(self.params)} "
                                      f"(unknown {', '.join(unknown)})")
        wanted = {p: template_value(v) for p, v in fixed.items()}
        return tuple(dict.fromkeys(m.TEMPLATE[param] for m in self.members
                                   if all(m.TEMPLATE[p] == v for p, v in wanted.items())))

    def __iter__(self) -> Iterator[type[K]]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, index: int) -> type[K]:
        return self.members[index]

    def __contains__(self, cls: object) -> bool:
        return cls in self.members

    def __repr__(self) -> str:
        params = ", ".join(f"{p} in ({', '.join(map(repr, vs))})" for p, vs in self.params.items())
        return f"<Family {self.name}: {len(self.members)} instances, {params}>"
