"""Typed kernel bindings at run time: loading verified artifacts, checking arguments, dispatching.

A generated binding class names its manifest entry; `Kernel` does the rest:

    class AddAssign(Kernel):                  # generated
        ID = "examples.add_assign.add_assign"
        PACKAGE = "shaders._generated"

    add = AddAssign(backend)                  # loads and verifies its artifacts, once per backend (cached)
    add.call(pass_, len(a), a, b)             # grid in threads; or workgroups(x, y, z) or indirect(buf)

`call()` checks everything it can before anything reaches the device: the pass's backend, each buffer's backend,
element type, mutability and usage, the kernel's `require(...)` preconditions, and the range of every scalar.
Its errors name the kernel and the argument.
"""

from __future__ import annotations

import functools
import hashlib
import json
import numbers
from dataclasses import dataclass
from importlib import resources
from types import SimpleNamespace
from typing import Any, ClassVar, TypeVar, Union, get_type_hints

import numpy as np

from .backends.base import Backend, KernelFunction, Pass
from .buffers import BufferUsage, ReadOnlyBuffer
from .lang import SCALAR_TYPES

MAX_WORKGROUPS = (2**31 - 1, 65535, 65535)       # what the runtime accepts; backends may fold or refuse more
KernelT = TypeVar("KernelT", bound="Kernel")


class KernelArgumentError(TypeError):
    """A call with arguments the kernel cannot take; the message names the kernel and the argument."""


class ArtifactError(RuntimeError):
    """An artifact is missing or does not match the manifest's sha256."""


@dataclass(frozen=True)
class Workgroups:
    """A grid given in workgroups rather than threads."""
    x: int
    y: int = 1
    z: int = 1


@dataclass(frozen=True)
class Indirect:
    """A grid read by the device from a buffer of three u32 workgroup counts, at element `offset`."""
    buffer: ReadOnlyBuffer
    offset: int = 0


Grid = Union[int, tuple[int], tuple[int, int], tuple[int, int, int], Workgroups, Indirect]


def workgroups(x: int, y: int = 1, z: int = 1) -> Workgroups:
    return Workgroups(x, y, z)


def indirect(buffer: ReadOnlyBuffer, offset: int = 0) -> Indirect:
    return Indirect(buffer, offset)


# --- manifests and artifacts -------------------------------------------------------------------------------------

@functools.cache
def manifest(package: str) -> dict:
    """The manifest of a generated package ("shaders._generated")."""
    try:
        text = (resources.files(package) / "manifest.json").read_text()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise ArtifactError(f"no compiled kernels in {package}: {e}. Build them with `khal-gpu build` (or reinstall "
                            "the package, whose build runs the khal hook)") from None
    return json.loads(text)


def read_artifact(package: str, info: dict, kind: str) -> bytes:
    """An artifact's bytes, refused unless they match the manifest."""
    if kind not in info["artifacts"]:
        raise ArtifactError(f"kernel {info['id']} was built without the {kind} artifact; "
                            "enable its target in the khal hook's options")
    meta = info["artifacts"][kind]
    try:
        data = (resources.files(package) / meta["path"]).read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"the {kind} artifact of kernel {info['id']} is missing ({package}/{meta['path']}); "
                            "rebuild with `khal-gpu build` or reinstall the package") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta["sha256"]:
        raise ArtifactError(f"the {kind} artifact of kernel {info['id']} ({package}/{meta['path']}) does not match "
                            f"the manifest: sha256 {digest[:16]}..., expected {meta['sha256'][:16]}...; the file "
                            "was modified or corrupted. Rebuild with `khal-gpu build` or reinstall the package")
    return data


# --- argument checking ---------------------------------------------------------------------------------------------

_INT_RANGE = {"i32": (-2**31, 2**31 - 1), "u32": (0, 2**32 - 1), "i64": (-2**63, 2**63 - 1), "u64": (0, 2**64 - 1)}


def _scalar_check(kernel: str, name: str, t: str):
    """A function that validates one scalar argument and returns it ready for struct.pack."""
    if t in _INT_RANGE:
        lo, hi = _INT_RANGE[t]

        def check_int(v: Any) -> int:
            if isinstance(v, bool) or not hasattr(v, "__index__"):
                raise KernelArgumentError(f"{kernel}: argument {name!r} must be an integer ({t}), not {v!r}")
            v = v.__index__()
            if not lo <= v <= hi:
                raise KernelArgumentError(f"{kernel}: argument {name!r} = {v} is out of the range of {t} "
                                          f"[{lo}, {hi}]")
            return v
        return check_int
    if t == "bool":
        def check_bool(v: Any) -> int:
            if not isinstance(v, (bool, int)) or v not in (0, 1):
                raise KernelArgumentError(f"{kernel}: argument {name!r} must be a bool, not {v!r}")
            return int(v)
        return check_bool

    def check_float(v: Any) -> float:
        # a number: int, float, a numpy scalar or 0-d array; not what float() would also take (a string, a bool, a
        # 1-element list or array), which is a mistake more often than a value
        if v.__class__ is float or isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) or \
                isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "iuf":
            return float(v)
        raise KernelArgumentError(f"{kernel}: argument {name!r} must be a number ({t}), not {v!r}")
    return check_float


def _struct_check(kernel: str, name: str, struct_name: str, fields: list):
    checks = [(f, _scalar_check(kernel, f"{name}.{f}", t)) for f, t in fields]
    all_u32 = all(t == "u32" for _, t in fields)

    def check_struct(v: Any) -> list:
        # fast path: a tuple (the generated NamedTuple) of plain ints in range, for all-u32 structs
        if all_u32 and isinstance(v, tuple) and len(v) == len(checks) and all(type(x) is int for x in v) and (
                min(v) >= 0 and max(v) <= 0xFFFFFFFF):
            return list(v)
        if isinstance(v, dict):
            missing = [f for f, _ in checks if f not in v]
            extra = sorted(set(v) - {f for f, _ in checks})
            if missing or extra:
                raise KernelArgumentError(f"{kernel}: argument {name!r} ({struct_name}) has fields "
                                          f"{', '.join(f for f, _ in checks)}; missing {missing}, unknown {extra}")
            return [c(v[f]) for f, c in checks]
        try:
            return [c(getattr(v, f)) for f, c in checks]
        except AttributeError:
            raise KernelArgumentError(f"{kernel}: argument {name!r} must be a {struct_name} (or a dict with its "
                                      f"fields {', '.join(f for f, _ in checks)}), not {v!r}") from None
    return check_struct


class Kernel:
    """Base of the generated binding classes. `AddAssign(backend)` gives the kernel loaded on that backend (loaded
    once, then cached by the backend: calling it again is cheap); dispatch with `call`."""

    ID: ClassVar[str]
    PACKAGE: ClassVar[str]
    TEMPLATE: ClassVar[dict] = {}
    REQUIRES: ClassVar[tuple] = ()

    def __new__(cls: type[KernelT], backend: Backend) -> KernelT:
        """The kernel loaded on `backend`: loaded on first use, then the same instance (`backend.kernel(cls)`)."""
        try:
            cached = backend.kernel
        except AttributeError:
            raise TypeError(f"{cls.__name__}(backend): expected a khal backend, not {backend!r}") from None
        return cached(cls)

    @classmethod
    def _load(cls: type[KernelT], backend: Backend) -> KernelT:
        """A new instance on `backend`, its artifacts loaded; `Backend.kernel` calls it once and keeps it."""
        self = object.__new__(cls)
        self._setup(backend)
        return self

    def _setup(self, backend: Backend) -> None:
        self.backend = backend
        self.info = info = manifest(self.PACKAGE)["kernels"][self.ID]
        self.name = info["id"]
        self.workgroup_size = tuple(info["workgroup_size"])
        missing = set(info["features"]) - set(backend.features)
        if missing:
            raise KernelArgumentError(f"kernel {self.name} needs device features that {backend!r} lacks: "
                                      f"{', '.join(sorted(missing))}")
        self.function: KernelFunction = backend.load_kernel(info, functools.partial(read_artifact, self.PACKAGE,
                                                                                     info))
        # Everything call() needs, precomputed: it runs on every dispatch and must cost little next to the
        # backend's own dispatch (a few microseconds).
        self.params: list[str] = info["params"]
        position = {name: i for i, name in enumerate(self.params)}
        types = {s["name"]: s["type"] for s in info["scalars"]}
        self._buffers = [(position[b["name"]], SCALAR_TYPES[b["elem"]], b["access"] == "read_write")
                         for b in info["buffers"]]
        # per buffer parameter: its position, whether the kernel writes it, and the key a buffer it takes carries
        self._bindings = [(i, writable, backend.binding_key(dtype, writable)) for i, dtype, writable in self._buffers]
        self._scalars = [(position[name], _struct_check(self.name, name, t, info["structs"][t])
                          if t in info["structs"] else _scalar_check(self.name, name, t)) for name, t in types.items()]
        self._structs = tuple(position[name] for name, t in types.items() if t in info["structs"])
        self._max_threads_x = MAX_WORKGROUPS[0] * self.workgroup_size[0]
        self._workgroup_x = self.workgroup_size[0]
        self._unmet = type(self).unmet if self.REQUIRES else None
        self._dispatch = self.function.dispatch
        self._arity = len(self.params)
        # kernels assume their buffers do not overlap (CUDA marks them __restrict__; WebGPU refuses a writable
        # buffer bound twice): the pairs of bindings (positions in `bound`) of which at least one is written
        self._alias_pairs = [(i, j) for i, (_, _, wi) in enumerate(self._buffers)
                             for j, (_, _, wj) in enumerate(self._buffers) if i < j and (wi or wj)]

    def call(self, pass_: Pass, grid: Grid, *args: Any, **kwargs: Any) -> None:
        """Dispatch the kernel over `grid` (threads, `workgroups(...)` or `indirect(...)`) in `pass_`."""
        backend = self.backend
        # a pass of this backend whose work goes where the backend's goes now (not across a capture's boundary)
        if getattr(pass_, "destination", None) is not backend.destination or pass_.ended:
            self._pass_error(pass_)
        if kwargs or len(args) != self._arity:
            args = self._bind(args, kwargs)
        bound = []
        for i, writable, key in self._bindings:
            buf = args[i]
            try:
                # this backend, the element type, a storage buffer with elements, writable where the kernel writes
                if (buf.writes if writable else buf.reads) is key:
                    bound.append(buf)
                    continue
            except AttributeError:
                pass
            self._buffer_error(i, buf, key[1], writable)
        for i, j in self._alias_pairs:
            if bound[i].handle is bound[j].handle:
                self._alias_error(args)
        scalars = tuple([check(args[i]) for i, check in self._scalars]) if self._scalars else ()
        # the generated conditions read struct fields as attributes: a struct given as a dict takes the slow path
        if self._unmet is not None and ((self._structs and any(isinstance(args[i], dict) for i in self._structs))
                                        or self._unmet(*args) >= 0):
            self._check_requirements(args)
        if grid.__class__ is int and 0 <= grid <= self._max_threads_x:
            counts: Any = ((grid + self._workgroup_x - 1) // self._workgroup_x, 1, 1)
        else:
            counts = self._grid(grid)
        self._dispatch(pass_, counts, bound, scalars)

    def _pass_error(self, pass_: Any) -> None:
        if not isinstance(pass_, Pass):
            raise KernelArgumentError(f"{self.name}: the first argument must be a pass, not {pass_!r}")
        if pass_.backend is not self.backend:
            raise KernelArgumentError(f"{self.name}: the kernel was loaded on {self.backend!r} but the pass "
                                      f"belongs to {pass_.backend!r}")
        if not pass_.ended:
            pass_.encoder.check_destination(f"{self.name}: dispatch")
        raise KernelArgumentError(f"{self.name}: the pass {pass_.label!r} has ended")

    def _bind(self, args: tuple, kwargs: dict) -> tuple:
        """The arguments in signature order, from positional and keyword arguments."""
        names = self.params
        if len(args) > len(names):
            raise KernelArgumentError(f"{self.name}: takes {len(names)} arguments after the pass and grid "
                                      f"({', '.join(names)}), {len(args)} given")
        values = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                raise KernelArgumentError(f"{self.name}: no parameter named {k!r}; the parameters are "
                                          f"{', '.join(names)}")
            if k in values:
                raise KernelArgumentError(f"{self.name}: argument {k!r} given twice")
            values[k] = v
        missing = [n for n in names if n not in values]
        if missing:
            raise KernelArgumentError(f"{self.name}: missing argument{'s' if len(missing) > 1 else ''} "
                                      f"{', '.join(missing)}")
        return tuple(values[n] for n in names)

    def _buffer_error(self, i: int, buf: Any, dtype: type, writable: bool) -> None:
        name, elem = self.params[i], dtype.ir
        if not isinstance(buf, ReadOnlyBuffer):
            raise KernelArgumentError(f"{self.name}: argument {name!r} must be a buffer of {elem}, "
                                      f"not {type(buf).__name__}")
        if buf.backend is not self.backend:
            raise KernelArgumentError(f"{self.name}: argument {name!r} lives on {buf.backend!r}, but the kernel "
                                      f"runs on {self.backend!r}")
        if buf.dtype is not dtype:
            raise KernelArgumentError(f"{self.name}: argument {name!r} must hold {elem}, but the buffer holds "
                                      f"{buf.dtype.ir}")
        if writable and not buf.writable:
            raise KernelArgumentError(f"{self.name}: the kernel writes argument {name!r}, but a read-only buffer "
                                      f"was given")
        if not buf.usage & BufferUsage.STORAGE:
            raise KernelArgumentError(f"{self.name}: argument {name!r} lacks the usage flag STORAGE; create it "
                                      "with usage=... | BufferUsage.STORAGE")
        raise KernelArgumentError(f"{self.name}: argument {name!r} is an empty buffer; a dispatch needs at least "
                                  "one element in every buffer")

    def _alias_error(self, args: tuple) -> None:
        first: dict[int, tuple[int, bool]] = {}        # buffer handle -> (position, written) of its first use
        for i, _, writable in self._buffers:
            j, written = first.setdefault(id(args[i].handle), (i, writable))
            if j != i and (writable or written):
                raise KernelArgumentError(f"{self.name}: arguments {self.params[j]!r} and {self.params[i]!r} are the "
                                          "same buffer, and the kernel writes one of them; kernels assume their "
                                          "buffers do not overlap")

    def _check_requirements(self, args: tuple) -> None:
        # struct arguments may be dicts; the generated conditions read fields as attributes
        values = [SimpleNamespace(**v) if i in self._structs and isinstance(v, dict) else v
                  for i, v in enumerate(args)]
        failed = type(self).unmet(*values)
        if failed >= 0:
            text, line = self.REQUIRES[failed]
            buffers = {i for i, _, _ in self._buffers}
            shown = ", ".join(f"len({n})={len(v)}" if i in buffers else f"{n}={v!r}"
                              for i, (n, v) in enumerate(zip(self.params, args)))
            raise KernelArgumentError(f"{self.name}: requirement `{text}` ({self.info['source']}:{line}) does not "
                                      f"hold for these arguments: {shown}")

    def _grid(self, grid: Grid) -> tuple[int, int, int] | Indirect:
        if isinstance(grid, Indirect):
            buf = grid.buffer
            offset = grid.offset if _is_count(grid.offset) else -1
            if not isinstance(buf, ReadOnlyBuffer) or buf.dtype.ir != "u32" or offset < 0 or offset + 3 > buf.length:
                raise KernelArgumentError(f"{self.name}: argument 'grid': an indirect grid needs a u32 buffer "
                                          f"holding three workgroup counts at offset {grid.offset!r}")
            if buf.backend is not self.backend or not buf.usage & BufferUsage.INDIRECT:
                raise KernelArgumentError(f"{self.name}: argument 'grid': the indirect grid buffer must live on "
                                          "this backend and have the usage flag INDIRECT")
            return grid
        if isinstance(grid, Workgroups):
            counts = (grid.x, grid.y, grid.z)
            if not all(_is_count(c) for c in counts):
                raise KernelArgumentError(f"{self.name}: argument 'grid' = {grid!r}: workgroup counts are integers "
                                          "from 0 on")
            counts = tuple(c.__index__() for c in counts)
        else:
            threads = (grid,) if not isinstance(grid, tuple) else grid
            if not 1 <= len(threads) <= 3 or not all(_is_count(t) for t in threads):
                raise KernelArgumentError(f"{self.name}: argument 'grid' must be a thread count (an integer from 0 "
                                          f"on, or a tuple of up to three), workgroups(...) or indirect(...), not "
                                          f"{grid!r}")
            threads = tuple(t.__index__() for t in threads) + (1,) * (3 - len(threads))
            counts = tuple(-(-t // w) for t, w in zip(threads, self.workgroup_size))
        for c, limit, axis in zip(counts, MAX_WORKGROUPS, "xyz"):
            if c > limit:
                raise KernelArgumentError(f"{self.name}: argument 'grid': {c} workgroups along {axis} (at most "
                                          f"{limit})")
        return counts

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.backend.name}>"


def _is_count(value: Any) -> bool:
    """Whether `value` can count threads or workgroups: an integer (not a bool) from 0 on."""
    return hasattr(value, "__index__") and not isinstance(value, (bool, np.bool_)) and value.__index__() >= 0


class Shader:
    """A group of kernels, declared as annotated attributes and loaded together (each from the backend's cache):

        class Kernels(Shader):
            add_assign: AddAssign
            reduce: SumU32

        kernels = Kernels(backend)
    """

    def __init__(self, backend: Backend):
        self.backend = backend
        for name, cls in get_type_hints(type(self)).items():
            if isinstance(cls, type) and issubclass(cls, Kernel):
                setattr(self, name, backend.kernel(cls))
