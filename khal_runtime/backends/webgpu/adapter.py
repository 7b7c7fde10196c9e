"""Opening wgpu-py and choosing an adapter: the wgpu features and limits khal asks for, and which adapters count.

wgpu-py is imported when the first backend is created (`import_wgpu`), so that importing the runtime costs nothing
on a machine without it, and a missing wgpu-native is a `BackendError` that says what to install.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from ..base import BackendError

wgpu: Any = None        # the wgpu module, imported when the first backend is created

# khal's feature names -> the wgpu feature names that provide them (all must be present).
FEATURES = {
    "immediates": ("immediates",),
    "f16": ("shader-f16",),
    "f64": ("shader-f64",),
    "i64": ("shader-int64",),
    "subgroups": ("subgroup",),
    "atomic_f32": ("shader-float32-atomic",),
    # emulated with bit operations, on every device: naga (wgpu-native 29) has no SPIR-V integer dot product
    "int_dot4": (),
}
# wgpu features requested as well when offered: pass timing, and subgroup barriers for subgroup kernels.
EXTRA_FEATURES = ("timestamp-query", "subgroup-barrier")

# Limits raised to the adapter's maxima.
LIMITS = (
    "max-buffer-size", "max-storage-buffer-binding-size", "max-immediate-size", "max-storage-buffers-per-shader-stage",
    "max-bindings-per-bind-group", "max-compute-workgroup-storage-size", "max-compute-invocations-per-workgroup",
    "max-compute-workgroup-size-x", "max-compute-workgroup-size-y", "max-compute-workgroup-size-z",
    "max-compute-workgroups-per-dimension",
)

# Backends that run SPIR-V compute through naga with immediates; wgpu's OpenGL backend (which wgpu falls back to when
# no Vulkan driver is installed) does not count.
GOOD_BACKENDS = ("Vulkan", "Metal", "D3D12")
# Preference among several adapters.
ADAPTER_RANK = {"DiscreteGPU": 0, "IntegratedGPU": 1, "VirtualGPU": 2, "CPU": 3}


def import_wgpu() -> Any:
    """The wgpu module, imported on the first call; BackendError when it cannot be."""
    global wgpu
    if wgpu is None:
        # Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid" for every device they probe without one; a
        # headless machine (CI, a container) often has none, and compute needs nothing from it.
        if not os.path.isdir(os.environ.get("XDG_RUNTIME_DIR", "")):
            os.environ["XDG_RUNTIME_DIR"] = tempfile.gettempdir()
        try:
            import wgpu as module
        except ImportError as e:
            raise BackendError(f"wgpu-py is not installed or cannot load wgpu-native ({e}); install it with "
                               "`pip install wgpu`") from None
        except Exception as e:       # wgpu-native failing to load raises other errors on some systems
            raise BackendError(f"wgpu-py failed to load: {type(e).__name__}: {e}") from None
        wgpu = module
        try:
            # only the backends khal can use: probing OpenGL too (EGL) took 0.28 of lavapipe's 0.46 s to enumerate
            from wgpu.backends.wgpu_native.extras import set_instance_extras
            set_instance_extras(backends=["Vulkan", "Metal", "DX12"])
        except Exception:            # an older wgpu-py, or an instance made already: all backends are probed
            pass
    return wgpu


def adapter_summary(adapter: Any) -> str:
    info = adapter.info
    return f"{info.get('device') or info.get('vendor') or '?'} ({info.get('backend_type', '?')}, " \
           f"{info.get('adapter_type', '?')})"


def choose_adapter(prefer: str | None = None) -> Any:
    """The best Vulkan / Metal / D3D12 adapter (a discrete GPU first, a CPU implementation last) whose description
    contains `prefer` when given; BackendError when there is none."""
    import_wgpu()
    try:
        adapters = list(wgpu.gpu.enumerate_adapters_sync())
    except Exception as e:
        raise BackendError(f"wgpu-py could not enumerate adapters: {type(e).__name__}: {e}") from None
    good = [a for a in adapters if a.info.get("backend_type") in GOOD_BACKENDS]
    if prefer:
        wanted = prefer.lower()
        good = [a for a in good if wanted in (adapter_summary(a) + a.info.get("description", "")).lower()]
    good = [a for a in good if "immediates" in a.features] or good
    if not good:
        found = ", ".join(adapter_summary(a) for a in adapters) or "none"
        wanted = f" matching {prefer!r}" if prefer else ""
        raise BackendError(f"no Vulkan, Metal or D3D12 device{wanted} (wgpu found: {found}); on Linux without a GPU "
                           "install Mesa's lavapipe (Debian/Ubuntu: mesa-vulkan-drivers)")
    good.sort(key=lambda a: ADAPTER_RANK.get(a.info.get("adapter_type"), 4))
    return good[0]
