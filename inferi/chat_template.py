"""Chat templates: `tokenizer.chat_template` rendered in Jinja2's sandbox, and encoded so that special tokens come from
the template's own text, never from what the messages say.

`render_chat` renders as transformers' `apply_chat_template` does (an `ImmutableSandboxedEnvironment` with
`trim_blocks`, `lstrip_blocks`, the loop-controls extension, the `{% generation %}` block, `raise_exception`,
`strftime_now` and a `tojson` that keeps non-ASCII text); a template of None is ChatML. Errors (syntax,
`raise_exception`, undefined names, sandbox violations) are a `ChatTemplateError` naming the template and its line.

`encode_chat` must not let a message that contains `<|im_end|>` end its turn. It renders the messages as given, then
once more with every `content` replaced by a unique sentinel, and once per message with only that message's content
real: the sentinel rendering gives the template's own text between contents, and each single-message rendering the
exact text the template made of that content (after its `trim` or other filters). Only the template's text is searched
for special tokens; a content is encoded as plain text, joined to the template text around it so that the ids are
those of the whole rendered prompt. When a template's text around a content depends on the content (the renderings
do not line up), the prompt is encoded with special tokens only if no content holds the text of one; otherwise
that is an error: the template and the message cannot be told apart.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from functools import lru_cache

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from inferi.tokenizer import Tokenizer

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
          " + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
TEMPLATE_NAME = "tokenizer.chat_template"


class ChatTemplateError(ValueError):
    """A chat template that does not compile or render; the message names the template and the line."""


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


class _GenerationBlock(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}`, which transformers' templates use to mark the assistant's part (for
    training masks): rendered as its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller) -> str:
        return caller()


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols, _GenerationBlock])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


_ENV = _environment()


def _template_line(error: BaseException, name: str) -> int | None:
    """The template line of a render error: Jinja rewrites the traceback so the template's frames carry its lines."""
    line = None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == name:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


@lru_cache(maxsize=8)
def _compile(source: str, name: str) -> jinja2.Template:
    try:
        code = _ENV.compile(source, name=name, filename=name)
    except jinja2.TemplateSyntaxError as e:
        raise ChatTemplateError(f"{name}, line {e.lineno}: {e.message}") from None
    return _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None))


def render_chat(template: str | None, messages: list[dict], *, add_generation_prompt: bool = True,
                bos_token: str = "", eos_token: str = "", name: str = TEMPLATE_NAME) -> str:
    """The prompt text of `messages` (dicts with `role` and `content`) in `template` (ChatML when None)."""
    if template is None:
        template, name = CHATML, "ChatML (no tokenizer.chat_template)"
    compiled = _compile(template, name)
    try:
        return compiled.render(messages=messages, add_generation_prompt=add_generation_prompt,
                               bos_token=bos_token, eos_token=eos_token)
    except Exception as e:  # raise_exception, undefined names, the sandbox, or the template's own bad index
        line = _template_line(e, name)
        where = f"{name}, line {line}" if line is not None else name
        raise ChatTemplateError(f"{where}: {type(e).__name__}: {e}") from None


def _with_contents(messages: list[dict], contents: list[str | None]) -> list[dict]:
    return [m if c is None else {**m, "content": c} for m, c in zip(messages, contents)]


def _content_texts(render, messages: list[dict],
                   sentinels: list[str | None]) -> tuple[list[str], list[tuple[int, str]]] | None:
    """The template's texts between contents, and (message index, what the template made of its content) in the
    order rendered; None when they do not line up."""
    masked = render(_with_contents(messages, sentinels))
    order = sorted((masked.find(s), i) for i, s in enumerate(sentinels) if s is not None)
    if any(pos < 0 or masked.count(sentinels[i]) != 1 for pos, i in order):
        return None  # a content dropped or repeated: the rendering is not template text + contents
    pieces, contents, start = [], [], 0
    for pos, i in order:
        pieces.append(masked[start:pos])
        start = pos + len(sentinels[i])
        only_this = [s if j != i else None for j, s in enumerate(sentinels)]
        single = render(_with_contents(messages, only_this))
        prefix, suffix = masked[:pos], masked[start:]
        if not (single.startswith(prefix) and single.endswith(suffix) and len(single) >= len(prefix) + len(suffix)):
            return None
        contents.append((i, single[len(prefix):len(single) - len(suffix)]))
    pieces.append(masked[start:])
    return pieces, contents


def encode_chat(tokenizer: Tokenizer, template: str | None, messages: list[dict], *,
                add_generation_prompt: bool = True) -> list[int]:
    """Token ids of the chat prompt; special tokens are taken from the template's text only."""
    bos = "" if tokenizer.bos_id is None else tokenizer.token_text(tokenizer.bos_id)
    eos = "" if tokenizer.eos_id is None else tokenizer.token_text(tokenizer.eos_id)

    def render(msgs: list[dict]) -> str:
        return render_chat(template, msgs, add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=eos)

    def n_special(text: str) -> int:
        return sum(isinstance(run, int) for run in tokenizer.split_special(text))

    for i, m in enumerate(messages):
        if not isinstance(m.get("content"), str | None):
            raise ChatTemplateError(f"message {i}: content must be a string, not {type(m['content']).__name__}")
    full = render(messages)
    tag = secrets.token_hex(8)
    sentinels = [None if m.get("content") is None else f"khalcontent{tag}x{i}x" for i, m in enumerate(messages)]
    aligned = _content_texts(render, messages, sentinels)
    if (aligned is None or "".join(_interleave(*aligned)) != full
            or any(n_special(text) > n_special(messages[i]["content"])  # a special token of the template's text
                   for i, text in aligned[1])):  # in a content's place: its text around the content varies
        for i, m in enumerate(messages):
            if m.get("content") and n_special(m["content"]):
                raise ChatTemplateError(f"{TEMPLATE_NAME if template is not None else 'ChatML'}: the template's text "
                                        f"around the messages depends on their contents, and message {i} holds a "
                                        f"special token's text: the template and the message cannot be told apart")
        return _with_bos(tokenizer, tokenizer.encode(full, add_bos=False, special=True))
    pieces, contents = aligned
    runs: list[str | int] = []  # plain text joined across template/content boundaries, special ids from pieces
    for k, piece in enumerate(pieces):
        for run in tokenizer.split_special(piece):
            _append_run(runs, run)
        if k < len(contents):
            _append_run(runs, contents[k][1])
    ids: list[int] = []
    for run in runs:
        ids.extend([run] if isinstance(run, int) else tokenizer.encode(run, add_bos=False))
    return _with_bos(tokenizer, ids)


def _with_bos(tokenizer: Tokenizer, ids: list[int]) -> list[int]:
    """BOS first when the vocabulary adds one and the template has not written it (llama.cpp does the same)."""
    if tokenizer.add_bos and tokenizer.bos_id is not None and ids[:1] != [tokenizer.bos_id]:
        return [tokenizer.bos_id, *ids]
    return ids


def _interleave(pieces: list[str], contents: list[tuple[int, str]]):
    for k, piece in enumerate(pieces):
        yield piece
        if k < len(contents):
            yield contents[k][1]


def _append_run(runs: list[str | int], run: str | int) -> None:
    if isinstance(run, str) and runs and isinstance(runs[-1], str):
        runs[-1] += run
    elif run != "":
        runs.append(run)

