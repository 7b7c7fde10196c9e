"""inferi: language models from GGUF files on khal and vortx (Llama/SmolLM2, Qwen2, Qwen3).

    import inferi
    model = inferi.load_model()                 # SmolLM2-135M-Instruct, pulled on first use; or a path to a GGUF file
    for text in model.chat([{"role": "user", "content": "What is the capital of France?"}]):
        print(text, end="", flush=True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .llm import LanguageModel, load_model

__all__ = ["load_model", "LanguageModel"]


def __getattr__(name: str) -> Any:
    # vortx and the kernels load only when a model does, so that `inferi inspect` and `--help` start fast
    if name in __all__:
        from . import llm
        return getattr(llm, name)
    raise AttributeError(f"module 'inferi' has no attribute {name!r}")
