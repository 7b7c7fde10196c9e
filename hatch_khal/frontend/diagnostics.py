"""Compile errors that point at the kernel's Python source: file, line, column, the line itself and a caret, with
notes that may point at other places (where a local got its type, the branch that makes a barrier divergent)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Note:
    """A remark attached to an error, located (`path` set) or not."""
    message: str
    path: str | None = None
    line: int = 0
    col: int = 0
    end_col: int | None = None
    source_line: str | None = None

    def format(self) -> list[str]:
        if self.path is None:
            return [f"  note: {self.message}"]
        return [f"  note: {self.path}:{self.line}:{self.col + 1}: {self.message}"] + _excerpt(
            self.source_line, self.col, self.end_col, "      ")


class KernelCompileError(Exception):
    """A kernel source is outside the language or mistyped. `str()` is the full, located message."""

    def __init__(self, message: str, path: str | Path, line: int, col: int, end_col: int | None = None,
                 source_line: str | None = None, hint: str | None = None, context: str | None = None,
                 notes: list[Note] | None = None):
        self.message, self.path, self.line, self.col = message, str(path), line, col
        self.end_col, self.source_line, self.hint, self.context = end_col, source_line, hint, context
        self.notes: list[Note] = list(notes or [])
        super().__init__(message)

    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        out = [f"{self.path}:{self.line}:{self.col + 1}: error: {self.message}"]
        out += _excerpt(self.source_line, self.col, self.end_col, "    ")
        if self.hint:
            out.append(f"  hint: {self.hint}")
        if self.context:
            out.append(f"  note: {self.context}")
        for note in self.notes:
            out += note.format()
        return "\n".join(out)


def _excerpt(source_line: str | None, col: int, end_col: int | None, indent: str) -> list[str]:
    if source_line is None:
        return []
    text = source_line.rstrip("\n")
    width = max(1, (end_col or col + 1) - col)
    return [f"{indent}{text}", indent + " " * col + "^" * min(width, max(1, len(text) - col))]


def ir_loc(node: ast.AST) -> tuple[int, int]:
    """The `loc` of the IR statement lowered from `node`: its line and column in the source file."""
    return (node.lineno, node.col_offset)


class Source:
    """One parsed shader module: its path as shown in messages, text and tree."""

    def __init__(self, display: str, text: str):
        self.display, self.text = display, text
        self.lines = text.splitlines()
        self._statements: dict[tuple[int, int], ast.stmt] | None = None
        try:
            self.tree = ast.parse(text, filename=display)
        except SyntaxError as e:
            raise KernelCompileError(f"Python syntax error: {e.msg}", display, e.lineno or 1, (e.offset or 1) - 1,
                                     source_line=e.text) from None

    def error(self, node: ast.AST | tuple[int, int], message: str, hint: str | None = None,
              context: str | None = None, notes: list[Note] | None = None) -> KernelCompileError:
        line, col, end_col = self._span(node)
        return KernelCompileError(message, self.display, line, col, end_col, self._line(line), hint, context, notes)

    def note(self, node: ast.AST | tuple[int, int], message: str) -> Note:
        line, col, end_col = self._span(node)
        return Note(message, self.display, line, col, end_col, self._line(line))

    def statement_at(self, loc: tuple[int, int]) -> ast.stmt | None:
        """The statement that starts at an IR `loc` (line, column), to point at it whole."""
        if self._statements is None:
            self._statements = {}
            for node in ast.walk(self.tree):
                if isinstance(node, ast.stmt):
                    self._statements.setdefault(ir_loc(node), node)
        return self._statements.get(loc)

    def _span(self, node: ast.AST | tuple[int, int]) -> tuple[int, int, int | None]:
        if isinstance(node, tuple):
            return node[0], node[1], None
        line, col = getattr(node, "lineno", 1), getattr(node, "col_offset", 0)
        end_col = getattr(node, "end_col_offset", None) if getattr(node, "end_lineno", line) == line else None
        return line, col, end_col

    def _line(self, line: int) -> str | None:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else None
