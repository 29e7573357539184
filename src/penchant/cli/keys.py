"""`penchant keys create|list|revoke`: API keys, shown once and stored as hashes."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from penchant.cli.common import DataDir, Json, Tenant, out, print_json, settings_for
from penchant.errors import NotFound
from penchant.jobs.keys import new_key, revoke_key
from penchant.jobs.store import opened_store
from penchant.privacy.keys import parse_key
from penchant.store import ApiKeyRecord

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


@app.command("create")
def create(
    scopes: Annotated[
        str,
        typer.Option(
            help="Comma-separated scopes: events:write, recs:read, catalog:write, "
            "catalog:read, privacy:export, privacy:erase, experiments:admin, admin.",
            show_default=False,
        ),
    ],
    name: Annotated[str, typer.Option(help="A label: which app or person holds the key.")] = "",
    tenant: Tenant = None,
    data_dir: DataDir = None,
    json: Json = False,
) -> None:
    """Create an API key. It is printed once; only its hash is stored."""
    settings = settings_for(data_dir)
    wanted = [s.strip() for s in scopes.split(",") if s.strip()]
    tenant = tenant or settings.tenant
    with opened_store(settings) as store:
        key = new_key(settings, store, tenant, wanted, name=name)
    key_id, _ = parse_key(key)
    if json:
        print_json({"key": key, "key_id": key_id, "tenant": tenant, "scopes": wanted})
        return
    console = out()
    console.print(f"Created key {key_id} for tenant {tenant} ({', '.join(wanted)}):")
    console.print(key, soft_wrap=True)
    console.print("Keep it now: it is not shown again.")


@app.command("list")
def list_keys(
    tenant: Annotated[
        str | None, typer.Option(help="Only this tenant's keys (default: every tenant).")
    ] = None,
    data_dir: DataDir = None,
    json: Json = False,
) -> None:
    """List API keys: ids, names, scopes and status (never secrets or hashes)."""
    settings = settings_for(data_dir)
    with opened_store(settings) as store:
        records = store.keys.list_keys(tenant)
    rows = [_public(r) for r in records]
    if json:
        print_json(rows)
        return
    table = Table("key id", "tenant", "name", "scopes", "created", "status")
    for row in rows:
        status = "active" if row["revoked_at"] is None else f"revoked {row['revoked_at']}"
        table.add_row(
            row["key_id"],
            row["tenant"],
            row["name"],
            ", ".join(row["scopes"]),
            row["created_at"] or "",
            status,
        )
    out().print(table)


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (from keys list).")],
    data_dir: DataDir = None,
    json: Json = False,
) -> None:
    """Revoke an API key: a running service refuses it from its next request on."""
    settings = settings_for(data_dir)
    with opened_store(settings) as store:
        if not revoke_key(settings, store, key_id):
            raise NotFound(f"no active key {key_id!r}")
    if json:
        print_json({"key_id": key_id, "revoked": True})
    else:
        out().print(f"Revoked key {key_id}")


def _public(record: ApiKeyRecord) -> dict[str, Any]:
    """What may be shown of a key: everything but its secret hash."""
    return {
        "key_id": record.key_id,
        "tenant": record.tenant,
        "name": record.name,
        "scopes": list(record.scopes),
        "created_at": record.created_at.isoformat() if record.created_at else None,
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
    }
