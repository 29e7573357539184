"""Session ids the service issues and signs, so that a public client key (shipped in a
browser or an app, readable by anyone) can act for its own session and for nobody else."""

from __future__ import annotations

import hmac
import secrets

from penchant.privacy.hashing import Hasher

PREFIX = "s_"
_SIGNATURE_CHARS = 24  # 96 bits of HMAC-SHA-256


def issue_session(hasher: Hasher, tenant: str) -> str:
    """A new session id, `s_<random>.<signature>`, valid in `tenant` only."""
    token = secrets.token_urlsafe(12)
    return f"{PREFIX}{token}.{_sign(hasher, tenant, token)}"


def is_issued(hasher: Hasher, tenant: str, session_id: str) -> bool:
    """Whether a session id was issued by `issue_session` for this tenant."""
    body, dot, signature = session_id.rpartition(".")
    if not dot or not body.startswith(PREFIX):
        return False
    expected = _sign(hasher, tenant, body.removeprefix(PREFIX))
    return hmac.compare_digest(signature, expected)


def _sign(hasher: Hasher, tenant: str, token: str) -> str:
    return hasher.id(tenant, token, purpose="session")[:_SIGNATURE_CHARS]
