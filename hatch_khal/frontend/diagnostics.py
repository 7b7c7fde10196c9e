"""Compile errors that point at the kernel's Python source: file, line, column, the line itself and a caret."""

from __future__ import annotations

import ast
from pathlib import Path


class KernelCompileError(Exception):
    """A kernel source is outside the language or mistyped. `str()` is the full, located message."""

    def __init__(self, message: str, path: str | Path, line: int, col: int, end_col: int | None = None,
                 source_line: str | None = None, hint: str | None = None, context: str | None = None):
        self.message, self.path, self.line, self.col = message, str(path), line, col
        self.end_col, self.source_line, self.hint, self.context = end_col, source_line, hint, context
        super().__init__(message)

    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        out = [f"{self.path}:{self.line}:{self.col + 1}: error: {self.message}"]
        if self.source_line is not None:
            text = self.source_line.rstrip("\n")
            width = max(1, (self.end_col or self.col + 1) - self.col)
            out += [f"    {text}", "    " + " " * self.col + "^" * min(width, max(1, len(text) - self.col))]
        if self.hint:
            out.append(f"  hint: {self.hint}")
        if self.context:
            out.append(f"  note: {self.context}")
        return "\n".join(out)


def ir_loc(node: ast.AST) -> tuple[int, int]:
    """The `loc` of the IR statement lowered from `node`: its line and column in the source file."""
    return (node.lineno, node.col_offset)


class Source:
    """One parsed shader module: its path as shown in messages, text and tree."""

    def __init__(self, display: str, text: str):
        self.display, self.text = display, text
        self.lines = text.splitlines()
        try:
            self.tree = ast.parse(text, filename=display)
        except SyntaxError as e:
            raise KernelCompileError(f"Python syntax error: {e.msg}", display, e.lineno or 1, (e.offset or 1) - 1,
                                     source_line=e.text) from None

    def error(self, node: ast.AST | tuple[int, int], message: str, hint: str | None = None,
              context: str | None = None) -> KernelCompileError:
        if isinstance(node, tuple):
            line, col, end_col = node[0], node[1], None
        else:
            line, col = getattr(node, "lineno", 1), getattr(node, "col_offset", 0)
            end_col = getattr(node, "end_col_offset", None) if getattr(node, "end_lineno", line) == line else None
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return KernelCompileError(message, self.display, line, col, end_col, text, hint, context)
