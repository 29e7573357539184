"""Personalized templates: compiled once, rendered per person in a Jinja2 sandbox with limits.

A template sees exactly four names besides Jinja's harmless helpers (`range`, `dict`,
`cycler`, `joiner`, `namespace`): `profile` (plain data), `recommend(k=3, surface=None)`,
`slot(name)` and `now` (an ISO time string). The caller's functions reach it wrapped, as
callables without readable attributes, and everything they return is copied into plain
data first, so no object of ours is ever inside the template.

The guards, each against a named attack, and their known limits are described in
`penchant.content.sandbox`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, cast

from jinja2 import Environment, StrictUndefined, Template, nodes
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError

from penchant.content.sandbox import Budget, PlainData, bounded_range, is_int, plain, render_budget
from penchant.content.sandbox import Sandbox as _Sandbox
from penchant.content.text import html_to_text
from penchant.errors import InvalidInput, PenchantError

#: The caller's recommender: `(k, surface)` to item dicts (id, title, url, image, reason...).
RecommendFn = Callable[[int, str | None], Sequence[Mapping[str, Any]]]
#: The caller's variant chooser: slot name to the chosen variant (with a string `id`).
ChooseVariantFn = Callable[[str], Mapping[str, Any]]

_PARTS: Final = (("subject", False), ("html", True), ("text", False))
_LOADING: Final = {
    nodes.Extends: "{% extends %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
}


@dataclass(frozen=True)
class TemplateSpec:
    """A template as its authors write it (a plain value, validated by `compile_template`).

    Attributes:
        name: the template's name, for messages and logs.
        html: the HTML part (autoescaped).
        text: the plain-text part; when None it is derived from the rendered HTML.
        subject: a subject line (for email), or None.
    """

    name: str
    html: str
    text: str | None = None
    subject: str | None = None


@dataclass(frozen=True)
class CompiledTemplate:
    """A validated template, ready to render many times (safe to share between threads).

    Attributes:
        spec: the template as written.
        parts: part name -> compiled Jinja template; they render only through `render`.
    """

    spec: TemplateSpec
    parts: Mapping[str, Template] = field(repr=False)


@dataclass(frozen=True)
class RenderLimits:
    """What one render may spend.

    Attributes:
        max_output_chars: characters per rendered part (1 MiB for ASCII).
        max_seconds: wall time for the whole render, the caller's functions included.
        max_range: items one `range()` may produce.
        max_recommendations: the largest `k` a template may ask `recommend` for.
    """

    max_output_chars: int = 1_048_576
    max_seconds: float = 2.0
    max_range: int = 10_000
    max_recommendations: int = 100


@dataclass(frozen=True)
class RenderContext:
    """What a template may know about one person, supplied by the caller.

    Attributes:
        profile: plain data (strings, numbers, booleans, None, lists and dicts of them;
            datetimes become ISO strings); copied deeply before the template sees it.
        recommend: `(k, surface) -> item dicts`, or None when this render has none.
        choose_variant: `slot name -> variant dict` with a string `id` (the real one asks
            the slot's policy), or None when this render has no slots.
        now: the render time the template sees as `now`; the current UTC time when None.
    """

    profile: Mapping[str, Any]
    recommend: RecommendFn | None = None
    choose_variant: ChooseVariantFn | None = None
    now: datetime | None = None


@dataclass(frozen=True)
class Rendered:
    """A rendered template.

    Attributes:
        html: the HTML part.
        text: the text part (rendered, or derived from the HTML).
        subject: the subject on one line, or None when the template has none.
        slots: slot name -> the id of the variant the render used, in first-use order,
            for the caller to log as decisions.
    """

    html: str
    text: str
    subject: str | None
    slots: dict[str, str]


class _TemplateFunction:
    """A caller's function as a template sees it: callable, with no attribute to read."""

    __slots__ = ("_call", "_name")

    def __init__(self, name: str, call: Callable[..., Any]) -> None:
        self._name = name
        self._call = call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<function {self._name}>"


class _Exposure:
    """One render's view of a `RenderContext`, with each slot and list decided once."""

    def __init__(self, ctx: RenderContext, limits: RenderLimits) -> None:
        self._ctx = ctx
        self._limits = limits
        self.slots: dict[str, str] = {}
        self._variants: dict[str, PlainData] = {}
        self._lists: dict[tuple[int, str | None], PlainData] = {}

    def variables(self) -> dict[str, Any]:
        if not isinstance(self._ctx.profile, Mapping):
            raise InvalidInput("profile: must be a mapping", field="profile")
        now = self._ctx.now or datetime.now(UTC)
        return {
            "profile": plain(self._ctx.profile, "profile", "profile"),
            "recommend": _TemplateFunction("recommend", self.recommend),
            "slot": _TemplateFunction("slot", self.slot),
            "now": now.isoformat(timespec="seconds"),
        }

    def recommend(self, k: int = 3, surface: str | None = None) -> PlainData:
        top = self._limits.max_recommendations
        if not is_int(k) or not 1 <= k <= top:
            raise SecurityError(f"recommend(): k must be an integer from 1 to {top}")
        if surface is not None and not isinstance(surface, str):
            raise SecurityError("recommend(): surface must be a string")
        if self._ctx.recommend is None:
            raise SecurityError("recommend() is not available in this render")
        if (k, surface) not in self._lists:
            items = _guarded("recommend", self._ctx.recommend, k, surface)
            if not isinstance(items, Sequence) or isinstance(items, str):
                raise SecurityError("recommend(): the caller's function must return a list")
            self._lists[k, surface] = plain(list(items), "recommend()", "template")
        return self._lists[k, surface]

    def slot(self, name: str) -> PlainData:
        if not isinstance(name, str) or not name:
            raise SecurityError("slot(): the slot name must be a non-empty string")
        if self._ctx.choose_variant is None:
            raise SecurityError("slot() is not available in this render")
        if name not in self._variants:
            variant = plain(_guarded("slot", self._ctx.choose_variant, name), "slot()", "template")
            if not isinstance(variant, dict) or not isinstance(variant.get("id"), str):
                raise SecurityError(f"slot({name!r}): the variant must be a dict with a string id")
            self.slots[name] = str(variant["id"])
            self._variants[name] = variant
        return self._variants[name]


def _guarded(name: str, call: Callable[..., Any], *args: Any) -> Any:
    """Call a caller's function; its domain errors pass, anything else names the function."""
    try:
        return call(*args)
    except PenchantError:
        raise
    except Exception as exc:
        raise SecurityError(f"{name}() failed: {_described(exc)}") from exc


def _environment(autoescape: bool) -> Environment:
    # `_Sandbox` is read from this module at each compile: the security tests' control
    # swaps in a plain `Environment` here to show that every payload works without it.
    env = _Sandbox(autoescape=autoescape, undefined=StrictUndefined, cache_size=0)
    env.globals.pop("lipsum", None)
    env.filters.pop("random", None)
    env.globals["range"] = bounded_range
    return env


def compile_template(spec: TemplateSpec, *, max_part_bytes: int = 65_536) -> CompiledTemplate:
    """Check a template and compile its parts.

    Args:
        spec: the template.
        max_part_bytes: the largest part, in UTF-8 bytes.

    Returns:
        The compiled template, for `render`.

    Raises:
        InvalidInput: an empty name, a part that is not a string, is over the size limit,
            has a syntax error or loads another template; `field` names the part and the
            message its line, e.g. "html: line 3: unexpected '}'".
    """
    if not isinstance(spec.name, str) or not spec.name.strip():
        raise InvalidInput("name: must be a non-empty string", field="name")
    if spec.html is None:
        raise InvalidInput("html: is required", field="html")
    envs = {True: _environment(True), False: _environment(False)}
    parts: dict[str, Template] = {}
    for part, autoescape in _PARTS:
        source = getattr(spec, part)
        if source is None:
            continue
        if not isinstance(source, str):
            raise InvalidInput(f"{part}: must be a string", field=part)
        size = len(source.encode("utf-8", "replace"))
        if size > max_part_bytes:
            raise InvalidInput(
                f"{part}: {size} bytes is over the limit of {max_part_bytes}", field=part
            )
        try:
            tree = envs[autoescape].parse(source)
            for node in tree.find_all(tuple(_LOADING)):
                raise InvalidInput(
                    f"{part}: line {node.lineno}: {_LOADING[type(node)]} is not allowed "
                    "(a template cannot load other templates)",
                    field=part,
                )
            parts[part] = envs[autoescape].from_string(tree)
        except TemplateSyntaxError as exc:
            raise InvalidInput(f"{part}: line {exc.lineno}: {_one_line(exc)}", field=part) from exc
    return CompiledTemplate(spec=spec, parts=parts)


def render(
    compiled: CompiledTemplate, ctx: RenderContext, *, limits: RenderLimits | None = None
) -> Rendered:
    """Render a compiled template for one person.

    Each slot is decided once per render and each `(k, surface)` recommended once, so the
    subject, HTML and text parts agree.

    Args:
        compiled: from `compile_template`.
        ctx: the person's profile and the caller's functions.
        limits: what the render may spend; `RenderLimits()` when None.

    Returns:
        The parts and the slot variants used.

    Raises:
        InvalidInput: a profile that is not plain data (field "profile"), or any error
            while rendering: an undefined name, a sandbox refusal, a limit, a caller's
            function raising (field "template"; the message names part and line).
        PenchantError: raised by the caller's functions, passed on unchanged.
    """
    limits = limits or RenderLimits()
    exposure = _Exposure(ctx, limits)
    variables = exposure.variables()
    with render_budget(
        max_output_chars=limits.max_output_chars,
        max_range=limits.max_range,
        max_seconds=limits.max_seconds,
    ) as budget:
        out = {
            part: _render_part(tmpl, part, variables, budget)
            for part, tmpl in compiled.parts.items()
        }
    subject = out.get("subject")
    return Rendered(
        html=out["html"],
        text=out["text"] if "text" in out else html_to_text(out["html"]),
        subject=None if subject is None else " ".join(subject.split()),
        slots=dict(exposure.slots),
    )


def _render_part(template: Template, part: str, variables: dict[str, Any], budget: Budget) -> str:
    cap = budget.max_output_chars
    chunks: list[str] = []
    size = 0
    stream = cast(Generator[str, None, None], template.generate(variables))
    try:
        for chunk in stream:
            size += len(chunk)
            if size > cap:
                raise InvalidInput(
                    f"template: {part}: output over the limit of {cap} characters",
                    field="template",
                )
            budget.check()
            chunks.append(chunk)
    except PenchantError:
        raise
    except Exception as exc:
        line = _template_line(exc)
        where = f"{part}: line {line}" if line else part
        reason = _one_line(exc) if isinstance(exc, TemplateError) else _described(exc)
        raise InvalidInput(f"template: {where}: {reason}", field="template") from exc
    finally:
        stream.close()
    return "".join(chunks)


def _template_line(exc: BaseException) -> int | None:
    """The template line an error was raised on, from Jinja's rewritten traceback."""
    if isinstance(exc, TemplateSyntaxError):
        return exc.lineno
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _one_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())[:300]


def _described(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_one_line(exc)}"
