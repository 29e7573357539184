"""Keyed hashes of ids (HMAC-SHA-256) with a secret kept in a file outside the database.

They stand in for a person's id wherever the id itself must not stay: erasure tombstones,
the audit log, log lines, and pseudonymized ingestion. Without the secret nobody can test a
guessed id against a hash, which a plain hash of a short id (an email, a number) would allow.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from penchant.errors import ConfigError

SECRET_BYTES = 32


def load_secret(path: Path, *, create: bool = True) -> bytes:
    """The secret in `path`, created (readable by its owner only) when missing.

    Args:
        path: the secret file: 64 hex characters.
        create: make a new secret when the file does not exist.

    Raises:
        ConfigError: the file is unreadable or does not hold a secret, or is missing and
            `create` is false.
    """
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        if not create:
            raise ConfigError(f"{path}: no privacy secret", field="privacy.secret_file") from None
        return _create(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the privacy secret: {exc}") from exc
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise ConfigError(
            f"{path}: not a privacy secret (expected at least 32 hex characters)",
            field="privacy.secret_file",
        )
    return secret


def _create(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(SECRET_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return load_secret(path, create=False)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return secret


class Hasher:
    """Keyed hashes of one deployment's ids; the tenant is part of what is hashed."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def __repr__(self) -> str:  # never show the secret
        return "Hasher(<secret>)"

    def id(self, tenant: str, value: str, *, purpose: str = "id") -> str:
        """The keyed hash of an id, as 64 hex characters.

        Args:
            tenant: the tenant the id belongs to (the same id in two tenants hashes apart).
            value: the id.
            purpose: keeps hashes made for different uses apart (a tombstone cannot be
                matched against a pseudonym).
        """
        message = f"{purpose}\x00{tenant}\x00{value}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()
