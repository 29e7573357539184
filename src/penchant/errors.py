"""Domain errors shared by every layer; the service and the CLI map them to answers."""

from __future__ import annotations

import importlib
from typing import Any


class PenchantError(Exception):
    """Base of every error Penchant raises on purpose.

    Attributes:
        code: a stable machine-readable code, used in API error bodies.
        field: the offending input field, when one can be named.
    """

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(PenchantError):
    """Input that fails validation (a field, a file row, a config value)."""

    code = "invalid_input"


class NotFound(PenchantError):
    """A record that does not exist in this tenant."""

    code = "not_found"


class Conflict(PenchantError):
    """A write that contradicts what is already stored."""

    code = "conflict"


class Erased(Conflict):
    """A write for a person who was erased: their tombstone stops it from re-creating them."""

    code = "erased"


class Unauthorized(PenchantError):
    """No credential, or one that is not valid."""

    code = "unauthorized"


class Forbidden(PenchantError):
    """A valid credential without the scope the operation needs."""

    code = "forbidden"


class PayloadTooLarge(PenchantError):
    """A request body or batch over the configured limit."""

    code = "payload_too_large"


class RateLimited(PenchantError):
    """Too many requests with one API key; retry after `retry_after_s` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ConfigError(PenchantError):
    """A configuration that cannot be used."""

    code = "config_error"


def import_extra(module: str, extra: str, needs: str, *, field: str | None = "models") -> Any:
    """Import an optional dependency on first use, or name the extra that installs it.

    Args:
        module: the module to import, e.g. `torch`.
        extra: the penchant extra that installs it, e.g. `deep`.
        needs: what needs it, to open the message (e.g. "the sasrec model").
        field: the input field the error names.

    Raises:
        ConfigError: the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{needs}: needs the penchant[{extra}] extra (pip install 'penchant[{extra}]')",
            field=field,
        ) from exc


class StoreError(PenchantError):
    """A storage backend that cannot be reached or used."""

    code = "store_error"


class Unavailable(PenchantError):
    """Something the request needs is not ready yet (e.g. no model has been trained)."""

    code = "unavailable"


class BudgetExceeded(Conflict):
    """A differentially private release that would spend more than the window's budget."""

    code = "privacy_budget_exceeded"
