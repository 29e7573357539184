"""Constrained field types shared by the records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

#: An external id: 1 to 256 characters, no control characters.
Id = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]

#: A JSON value allowed in free-form attributes.
AttributeValue = str | int | float | bool | None | list[str | int | float | bool]


def as_utc(value: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is taken to be UTC already.

    Raises:
        ValueError: the instant falls outside the years 1 to 9999 in UTC (such as
            0001-01-01T00:00+01:00); a validation error, where an OverflowError was a 500.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range in UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


def to_micros(value: datetime) -> int:
    """Microseconds since the Unix epoch, the storage form of every time."""
    aware = as_utc(value)
    return (
        int((aware - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000
        + aware.microsecond
    )


def from_micros(value: int) -> datetime:
    """The inverse of `to_micros`."""
    seconds, micros = divmod(int(value), 1_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=micros)


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)
