"""The SQL experiment store: A/B/n experiments per tenant, as JSON documents."""

from __future__ import annotations

from sqlalchemy import Engine, delete, select

from penchant.schema.experiments import Experiment, ExperimentStatus
from penchant.store.sql.engine import now_micros, read_tx, upsert, write_tx
from penchant.store.sql.tables import experiments


class SqlExperimentStore:
    """Experiments over SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def put(self, tenant: str, experiment: Experiment) -> None:
        """Create or replace an experiment."""
        row = {
            "tenant": tenant,
            "name": experiment.id,
            "surface": experiment.target,
            "status": experiment.status,
            "body": experiment.model_dump_json(),
            "updated_at": now_micros(),
        }
        with write_tx(self._engine) as conn:
            upsert(conn, experiments, ["tenant", "name"], row)

    def get(self, tenant: str, name: str) -> Experiment | None:
        """An experiment, or None."""
        stmt = select(experiments.c.body).where(
            experiments.c.tenant == tenant, experiments.c.name == name
        )
        with read_tx(self._engine) as conn:
            body = conn.execute(stmt).scalar()
        return Experiment.model_validate_json(body) if body is not None else None

    def list(
        self,
        tenant: str,
        *,
        surface: str | None = None,
        status: ExperimentStatus | None = None,
    ) -> list[Experiment]:
        """A tenant's experiments (on one target, of one status, when given), by name.

        `surface` is an experiment's `target`: a surface's name, or `slot:NAME`."""
        stmt = select(experiments.c.body).where(experiments.c.tenant == tenant)
        if surface is not None:
            stmt = stmt.where(experiments.c.surface == surface)
        if status is not None:
            stmt = stmt.where(experiments.c.status == status)
        with read_tx(self._engine) as conn:
            rows = conn.execute(stmt.order_by(experiments.c.name)).scalars()
            return [Experiment.model_validate_json(b) for b in rows]

    def delete(self, tenant: str, name: str) -> bool:
        """Delete an experiment; True if it existed."""
        with write_tx(self._engine) as conn:
            gone = conn.execute(
                delete(experiments).where(
                    experiments.c.tenant == tenant, experiments.c.name == name
                )
            )
            return bool(gone.rowcount)
