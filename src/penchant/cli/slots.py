"""`penchant slots ...`: define slots and variants, approve variants, propose copy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from penchant.cli.common import (
    DataDir,
    Json,
    Tenant,
    out,
    parse_model,
    print_json,
    read_json,
    settings_for,
)
from penchant.content.proposals import propose_variants
from penchant.content.slots import Slots
from penchant.errors import InvalidInput
from penchant.jobs.content import export_decisions, generation_config
from penchant.jobs.store import opened_store
from penchant.schema.content import Slot, Variant

app = typer.Typer(help="Slots and their variants (dynamic content).", no_args_is_help=True)

SlotFile = Annotated[
    Path, typer.Argument(help="A JSON file: the slot (id, policy, features, reward...).")
]
VariantFile = Annotated[Path, typer.Argument(help="A JSON file: one variant or a list of them.")]


@app.command("put")
def put(path: SlotFile, tenant: Tenant = None, data_dir: DataDir = None) -> None:
    """Create or replace a slot from a JSON file."""
    settings = settings_for(data_dir)
    slot = parse_model(Slot, read_json(path), path.name)
    with opened_store(settings) as store:
        Slots(store.content).put(tenant or settings.tenant, slot)
    out().print(f"slot {slot.id} saved")


@app.command("variants")
def variants(
    slot: Annotated[str, typer.Argument(help="The slot's id.")],
    path: VariantFile,
    tenant: Tenant = None,
    data_dir: DataDir = None,
) -> None:
    """Add or replace variants of a slot from a JSON file (approved unless `status` says
    `pending`)."""
    settings = settings_for(data_dir)
    data = read_json(path)
    rows = data if isinstance(data, list) else [data]
    parsed = [parse_model(Variant, row, f"{path.name}[{n}]") for n, row in enumerate(rows)]
    with opened_store(settings) as store:
        slots = Slots(store.content)
        for variant in parsed:
            slots.put_variant(tenant or settings.tenant, slot, variant)
    out().print(f"{len(parsed)} variant(s) of {slot} saved")


@app.command("list")
def list_slots(tenant: Tenant = None, data_dir: DataDir = None, json: Json = False) -> None:
    """Every slot, with how many variants of each status it has."""
    settings = settings_for(data_dir)
    tenant = tenant or settings.tenant
    rows: list[dict[str, Any]] = []
    with opened_store(settings) as store:
        for slot in store.content.list_slots(tenant):
            found = store.content.list_variants(tenant, slot.id)
            counts = {
                s: sum(v.status == s for v in found) for s in ("approved", "pending", "retired")
            }
            rows.append({"id": slot.id, "policy": slot.policy, **counts})
    if json:
        print_json(rows)
        return
    table = Table()
    for column in ("slot", "policy", "approved", "pending", "retired"):
        table.add_column(column)
    for row in rows:
        name = str(row["policy"].get("name"))
        table.add_row(row["id"], name, *(str(row[s]) for s in ("approved", "pending", "retired")))
    out().print(table)


@app.command("show")
def show(
    slot: Annotated[str, typer.Argument(help="The slot's id.")],
    tenant: Tenant = None,
    data_dir: DataDir = None,
) -> None:
    """A slot and all its variants, as JSON."""
    settings = settings_for(data_dir)
    tenant = tenant or settings.tenant
    with opened_store(settings) as store:
        found = store.content.get_slot(tenant, slot)
        if found is None:
            raise InvalidInput(f"no slot {slot!r}", field="slot")
        listed = store.content.list_variants(tenant, slot)
    print_json(
        {
            "slot": found.model_dump(mode="json"),
            "variants": [v.model_dump(mode="json") for v in listed],
        }
    )


def _status(
    slot: str, variant: str, status: str, tenant: str | None, data_dir: Path | None
) -> None:
    settings = settings_for(data_dir)
    with opened_store(settings) as store:
        Slots(store.content).set_status(tenant or settings.tenant, slot, variant, status)  # type: ignore[arg-type]
    out().print(f"{slot}/{variant}: {status}")


@app.command("approve")
def approve(slot: str, variant: str, tenant: Tenant = None, data_dir: DataDir = None) -> None:
    """Approve a variant: from now on it can be served."""
    _status(slot, variant, "approved", tenant, data_dir)


@app.command("retire")
def retire(slot: str, variant: str, tenant: Tenant = None, data_dir: DataDir = None) -> None:
    """Retire a variant: it is no longer served."""
    _status(slot, variant, "retired", tenant, data_dir)


@app.command("propose")
def propose(
    slot: Annotated[str, typer.Argument(help="The slot's id.")],
    brief: Annotated[str, typer.Option(help="What the new copy should say.")],
    n: Annotated[int, typer.Option(min=1, max=20, help="How many proposals.")] = 5,
    tenant: Tenant = None,
    data_dir: DataDir = None,
    json: Json = False,
) -> None:
    """Ask the configured generation server (content.generation_url) for new copy. The
    proposals are stored as pending variants; approve them to serve them."""
    settings = settings_for(data_dir)
    config = generation_config(settings)
    with opened_store(settings) as store:
        made = propose_variants(
            Slots(store.content), tenant or settings.tenant, slot, config, brief, n
        )
    if json:
        print_json([v.model_dump(mode="json") for v in made])
        return
    for variant in made:
        out().print(f"pending {variant.id}: {variant.text}")
    out().print(f"approve with: penchant slots approve {slot} <variant id>")


@app.command("export")
def export(
    slot: Annotated[str, typer.Argument(help="The slot's id.")],
    output: Annotated[Path, typer.Option(help="The CSV file to write.")],
    tenant: Tenant = None,
    data_dir: DataDir = None,
    json: Json = False,
) -> None:
    """Write the slot's logged decisions (variant, propensity, reward, context) as the CSV
    that `penchant ope --logs` reads. `action` indexes the slot's variant ids, sorted."""
    settings = settings_for(data_dir)
    with opened_store(settings) as store:
        done = export_decisions(store, tenant or settings.tenant, slot, output)
    summary = {
        "path": str(done.path),
        "rows": done.rows,
        "actions": done.actions,
        "skipped_other_layout": done.skipped,
    }
    if json:
        print_json(summary)
        return
    out().print(
        f"wrote {done.rows:,} decisions to {done.path}; actions 0..{len(done.actions) - 1} "
        f"are {', '.join(done.actions)}"
        + (
            f"; {done.skipped:,} decisions under an older context layout left out"
            if done.skipped
            else ""
        )
    )
