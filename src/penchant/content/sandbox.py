"""The Jinja2 sandbox that personalized templates render in, and the limits it enforces.

Everything here runs while a template renders: the environment class whose checks spend
each render's `Budget`, the bounded `range()`, and the copy into plain data that keeps
every object of ours out of a template. `penchant.content.templates` compiles and renders
with them, and applies the compile-time and output guards below itself.

Guards, each against a named attack:
- `ImmutableSandboxedEnvironment`: no attribute starting with `_` (so no `__class__`,
  `__globals__`, `__mro__`), sandboxed `str.format`, no mutation of lists and dicts.
- No loader: `{% include %}`, `{% extends %}` and `{% import %}` are refused at compile
  time, and would fail at render time too; no template can read a file.
- `StrictUndefined`: a misspelt name or key is an error, not a silent blank (a template
  tests an optional key with `is defined`, `|default(...)` or `profile.get(...)`).
- Output: the HTML part autoescapes; text and subject do not (the subject is put on one
  line, so no value can add a mail header). `random` and `lipsum` are removed so that a
  render depends only on its context.
- Limits (`RenderLimits`): output per part, checked while streaming with `generate()`;
  `range()` length; a time budget, checked on every output chunk, every call, attribute
  access and intercepted operator, and every 1024 steps of a `range()`; `*` and `+` that
  would build a string or list over the output limit, and `*` or `**` on huge integers,
  are refused before they run, as are calls whose result is over the output limit.

Known limits: Jinja compiles loops to plain Python loops, so a loop that does none of the
checked operations (nested `for` over a long string or list with an empty body) cannot be
interrupted before it ends, and a single step (`~` on long strings, a format width, a
padding method) can allocate memory before any check sees the result. The checks bound
mistakes and casual abuse; a hard bound for templates from untrusted authors needs a
worker process with a CPU and memory rlimit that the caller can kill.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, TypeAlias, overload

import numpy as np
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from penchant.errors import InvalidInput

PlainData: TypeAlias = "bool | int | float | str | list[PlainData] | dict[str, PlainData] | None"

_MAX_DEPTH: Final = 32
_MAX_INT_BITS: Final = 16_384


@dataclass
class Budget:
    """What the render in progress may spend; every sandbox check reads it.

    Attributes:
        max_output_chars: characters per rendered part, and items per built string or list.
        max_range: items one `range()` may produce.
        max_seconds: wall time for the whole render (for the message).
        deadline: the `time.monotonic()` value after which the render fails.
    """

    max_output_chars: int
    max_range: int
    max_seconds: float
    deadline: float

    def check(self) -> None:
        """Fail once the render is past its deadline.

        Raises:
            SecurityError: the render took longer than `max_seconds`.
        """
        if time.monotonic() > self.deadline:
            raise SecurityError(f"render took longer than {self.max_seconds:g} s")


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "penchant_render_budget", default=None
)


@contextmanager
def render_budget(*, max_output_chars: int, max_range: int, max_seconds: float) -> Iterator[Budget]:
    """Make one render's budget the one the sandbox checks, while the block runs.

    Args:
        max_output_chars: characters per rendered part.
        max_range: items one `range()` may produce.
        max_seconds: wall time from now until the render fails.

    Yields:
        The budget, active in this context until the block ends.
    """
    budget = Budget(max_output_chars, max_range, max_seconds, time.monotonic() + max_seconds)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def _budget() -> Budget:
    budget = _BUDGET.get()
    if budget is None:
        raise SecurityError("templates render only through penchant.content.render")
    return budget


class _TimedRange(Sequence[int]):
    """A bounded `range` whose iteration checks the render's time budget."""

    __slots__ = ("_range",)

    def __init__(self, values: range) -> None:
        self._range = values

    def __len__(self) -> int:
        return len(self._range)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> _TimedRange: ...
    def __getitem__(self, index: int | slice) -> int | _TimedRange:
        if isinstance(index, slice):
            return _TimedRange(self._range[index])
        return self._range[index]

    def __iter__(self) -> Iterator[int]:
        budget = _budget()
        for step, value in enumerate(self._range):
            if step % 1024 == 0:
                budget.check()
            yield value

    def __repr__(self) -> str:
        return repr(self._range)


def bounded_range(*args: int) -> Sequence[int]:
    """The template's `range()`: Python's, refused over the budget's length limit.

    Args:
        *args: as for `range` (stop, or start, stop and an optional step).

    Returns:
        The values, as a sequence whose iteration checks the time budget.

    Raises:
        SecurityError: no render in progress, the render is out of time, or the range
            has more than `max_range` items.
    """
    budget = _budget()
    budget.check()
    values = range(*args)
    try:
        size: float = len(values)
    except OverflowError:
        size = float("inf")
    if size > budget.max_range:
        raise SecurityError(f"range() over the limit of {budget.max_range} items")
    return _TimedRange(values)


def is_int(value: object) -> bool:
    """Whether `value` is an integer and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


class Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus the time budget and size checks of the active `Budget`."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.check()
        cap = budget.max_output_chars
        if is_int(left) and is_int(right):
            bits = abs(left).bit_length()
            if operator == "**" and bits > 1 and right > 0:
                bits *= right
            elif operator == "*":
                bits += abs(right).bit_length()
            if bits > _MAX_INT_BITS:
                raise SecurityError(f"integer over {_MAX_INT_BITS} bits")
        elif operator == "*" and (is_int(left) or is_int(right)):
            seq, count = (right, left) if is_int(left) else (left, right)
            if isinstance(seq, str | list | tuple) and len(seq) * count > cap:
                raise SecurityError(f"'*' would make over {cap} items")
        elif (
            operator == "+"
            and isinstance(left, str | list | tuple)
            and isinstance(right, str | list | tuple)
            and len(left) + len(right) > cap
        ):
            raise SecurityError(f"'+' would make over {cap} items")
        return super().call_binop(context, operator, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.check()
        result = super().call(context, obj, *args, **kwargs)
        if isinstance(result, str | list | tuple) and len(result) > budget.max_output_chars:
            raise SecurityError(f"a call made over {budget.max_output_chars} items")
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        _budget().check()
        return super().getattr(obj, attribute)


def plain(value: Any, where: str, field: str, depth: int = 0) -> PlainData:
    """A deep copy of `value` made only of None, bool, int, float, str, list and dict.

    Args:
        value: the data to copy; numpy scalars become Python numbers, dates ISO strings.
        where: the path of `value`, for messages (e.g. "profile.tags[2]").
        field: the `field` of the error raised.
        depth: how deep `value` is nested (the copy refuses more than 32 levels).

    Returns:
        The copy; a `str` subclass (such as `Markup`) becomes a plain `str`.

    Raises:
        InvalidInput: a non-string key, nesting that is too deep, or a value that is not
            plain data; the message names where.
    """
    if depth > _MAX_DEPTH:
        raise InvalidInput(f"{where}: nested deeper than {_MAX_DEPTH} levels", field=field)
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)  # a str subclass (Markup!) must not keep its behaviour
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        out: dict[str, PlainData] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{where}: keys must be strings, not {key!r}", field=field)
            out[str(key)] = plain(item, f"{where}.{key}", field, depth + 1)
        return out
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [plain(item, f"{where}[{i}]", field, depth + 1) for i, item in enumerate(value)]
    raise InvalidInput(
        f"{where}: a {type(value).__name__} is not plain data "
        "(use strings, numbers, booleans, None, lists or dicts)",
        field=field,
    )
