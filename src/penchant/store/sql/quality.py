"""The data-quality report: counts, unknown items, event mix and time range."""

from __future__ import annotations

from sqlalchemy import Engine, text

from penchant.schema.common import from_micros
from penchant.store.base import DataQuality
from penchant.store.sql.dictionary import Dictionary
from penchant.store.sql.engine import read_tx

_TOTALS = text(
    "SELECT count(*), count(DISTINCT user_ix), count(DISTINCT session_ix), "
    "count(DISTINCT item_ix), sum(CASE WHEN item_ix IS NULL THEN 1 ELSE 0 END), min(ts), max(ts) "
    "FROM events WHERE tenant_ix = :t"
)
# Aggregate per item first: the join then runs once per item, not once per event.
_UNKNOWN = text(
    "WITH per AS (SELECT item_ix, count(*) AS n FROM events "
    "WHERE tenant_ix = :t AND item_ix IS NOT NULL GROUP BY item_ix) "
    "SELECT coalesce(sum(per.n), 0), count(*) FROM per "
    "JOIN dictionary d ON d.ix = per.item_ix "
    "LEFT JOIN items i ON i.tenant_ix = :t AND i.item_id = d.key WHERE i.item_id IS NULL"
)
_BY_TYPE = text(
    "SELECT d.key, per.n FROM (SELECT type_ix, count(*) AS n FROM events WHERE tenant_ix = :t "
    "GROUP BY type_ix) per JOIN dictionary d ON d.ix = per.type_ix ORDER BY per.n DESC"
)
_CATALOG = text(
    "SELECT (SELECT count(*) FROM items WHERE tenant_ix = :t), "
    "(SELECT count(*) FROM users WHERE tenant_ix = :t)"
)


def data_quality(engine: Engine, codes: Dictionary, tenant: str) -> DataQuality:
    """Compute the data-quality report of one tenant."""
    with read_tx(engine) as conn:
        tenant_ix = codes.tenant(conn, tenant, create=False)
        if tenant_ix is None:
            return DataQuality(0, 0, 0, 0, 0, 0, 0, 0, 0)
        n, n_users, n_sessions, n_items, no_item, first, last = conn.execute(
            _TOTALS, {"t": tenant_ix}
        ).one()
        unknown_events, unknown_items = conn.execute(_UNKNOWN, {"t": tenant_ix}).one()
        by_type = {str(k): int(v) for k, v in conn.execute(_BY_TYPE, {"t": tenant_ix})}
        catalog_items, catalog_users = conn.execute(_CATALOG, {"t": tenant_ix}).one()
    return DataQuality(
        events=int(n),
        users=int(n_users),
        sessions=int(n_sessions),
        items=int(n_items),
        catalog_items=int(catalog_items),
        catalog_users=int(catalog_users),
        events_unknown_item=int(unknown_events),
        unknown_items=int(unknown_items),
        events_without_item=int(no_item or 0),
        by_type=by_type,
        first_ts=from_micros(first) if first is not None else None,
        last_ts=from_micros(last) if last is not None else None,
    )
