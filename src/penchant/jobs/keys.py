"""Creating and revoking API keys for the CLI and `penchant init`: audited, and a revocation
reaches every running worker on its next request."""

from __future__ import annotations

from collections.abc import Sequence

from penchant.jobs.store import settings_hasher
from penchant.privacy.audit import AuditLog
from penchant.privacy.keys import KeysMarker, create_key, parse_key
from penchant.settings import Settings
from penchant.store import Store


def audit_log(settings: Settings, store: Store) -> AuditLog:
    """The deployment's audit log."""
    return AuditLog(store.engine, settings_hasher(settings))


def new_key(
    settings: Settings,
    store: Store,
    tenant: str,
    scopes: Sequence[str],
    *,
    name: str = "",
    actor: str = "cli",
) -> str:
    """Create an API key (see `penchant.privacy.keys.create_key`) and audit it.

    Raises:
        InvalidInput: an unknown scope, or none.
    """
    audit = audit_log(settings, store)
    try:
        key = create_key(store.keys, tenant, scopes, name=name)
    except Exception:
        audit.record(tenant, actor, "key.create", "key:?", "failed")
        raise
    key_id, _ = parse_key(key)
    audit.record(tenant, actor, "key.create", f"key:{key_id}", "ok")
    return key


def revoke_key(settings: Settings, store: Store, key_id: str, *, actor: str = "cli") -> bool:
    """Revoke a key, tell every worker (the keys marker) and audit it; False if no active
    key has that id."""
    record = store.keys.get_key(key_id)
    revoked = store.keys.revoke_key(key_id)
    if revoked:
        KeysMarker(settings.keys_marker_file).bump()
    tenant = record.tenant if record is not None else "?"
    audit_log(settings, store).record(
        tenant, actor, "key.revoke", f"key:{key_id}", "ok" if revoked else "not_found"
    )
    return revoked
