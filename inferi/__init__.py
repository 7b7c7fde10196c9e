"""inferi: language models from GGUF files on khal and vortx (Llama/SmolLM2, Qwen2, Qwen3).

    import inferi
    model = inferi.load_model()                 # SmolLM2-135M-Instruct, pulled on first use; or a path to a GGUF file
    for text in model.chat([{"role": "user", "content": "What is the capital of France?"}]):
        print(text, end="", flush=True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .llm import LanguageModel

__all__ = ["load_model", "LanguageModel"]


def load_model(path: Any = None, backend: str | None = None, context_length: int | None = None,
               progress: bool = True) -> LanguageModel:
    """A GGUF model (a path, a name that `inferi pull` knows, or None for the default model) on `backend`
    ("cuda", "webgpu", "cpu"; None: the best present), with a KV cache of `context_length` tokens."""
    from .llm import load_model as load  # vortx and the kernels load only when a model does (a fast CLI start)
    return load(path, backend, context_length, progress)


def __getattr__(name: str) -> Any:
    if name == "LanguageModel":
        from .llm import LanguageModel
        return LanguageModel
    raise AttributeError(f"module 'inferi' has no attribute {name!r}")
