"""The init job: a data directory with a commented config, a migrated store and an admin key."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from penchant.errors import PenchantError
from penchant.jobs.keys import new_key
from penchant.jobs.store import settings_store
from penchant.privacy.keys import authenticate
from penchant.settings import CONFIG_FILE, Settings
from penchant.store import KeyStore

#: The config `penchant init` writes. It is also the reference of every setting: each one is
#: shown with its default, commented out. tests/jobs checks that it matches `Settings`.
CONFIG_TEMPLATE = """\
# Penchant configuration. Every setting is listed with its default, commented out:
# uncomment a line to change it. Environment variables win over this file: PENCHANT_ and
# the setting's path joined by "__", e.g. PENCHANT_TENANT, PENCHANT_STORE__URL,
# PENCHANT_SERVICE__PORT. The data directory itself is --data-dir or PENCHANT_DATA_DIR.

# The tenant (one site, shop or app) that commands use when --tenant is not given.
# tenant = "default"
# Surfaces: one recommendation pipeline per page or channel, as [surfaces.NAME] tables
# (an example is at the end of this file). Without any, every request uses the built-in one.
# surfaces = {}

[store]
# Where events, the catalog and API keys live: "sqlite:///path/to/penchant.db" or
# "postgresql://user@host:5432/database". Default: penchant.db in the data directory.
# url = "sqlite:///penchant-data/penchant.db"
# SQLite durability: "FULL" survives a power loss, "NORMAL" only a crash of the process,
# "OFF" neither. A write is acknowledged only once it is durable at this level.
# synchronous = "FULL"
# How long, in milliseconds, a SQLite writer waits for the write lock before failing.
# busy_timeout_ms = 30000

[state]
# Online state (recent events, counters, bandit state): "memory://" for one process, or
# "redis://host:6379/0" to share it between service workers.
# url = "memory://"

[service]
# The address the HTTP service listens on. Any address but a loopback one is refused
# until an API key exists.
# host = "127.0.0.1"
# port = 8000
# The largest request body, in bytes, and the most events or records in one request.
# max_body_bytes = 33554432
# max_batch = 10000
# Service worker processes. Two use both cores of a small machine for ingestion (SQLite
# writers queue for the write lock); online state must then be shared: state.url = Redis.
# workers = 1
# With several workers and at least as many CPUs (Linux), each worker answers requests on a
# CPU of its own; false leaves them to the scheduler (e.g. on a machine shared with other
# busy programs).
# pin_workers = true
# Requests a second each API key may make on average, and how many at once above that
# (answered 429 with Retry-After past them); 0 sets no limit. With several workers each
# enforces its share of the rate.
# rate_limit = 0.0
# rate_burst = 100.0
# Seconds a worker trusts an API key it has looked up. A revocation (penchant keys revoke)
# also changes keys.generation in the data directory, which every worker checks on every
# request: a revoked key fails on the next request (0 looks every key up every time).
# key_cache_s = 5.0

[events]
# Event types accepted besides the built-in ones (impression, view, click, like, dislike,
# rating, add_to_cart, purchase, share, dwell, skip, dismiss, conversion).
# Names are letters, digits, "_" or "-", e.g. ["bookmark", "quiz_answer"].
# custom_types = []

[training]
# The models one `penchant train` fits into one versioned bundle (served together).
# models = ["popular", "itemknn", "ials", "taste"]
# Hyperparameters per model, e.g. params = { ials = { factors = 128 }, itemknn = { k = 50 } }
# params = {}
# The service retrains in a separate process every interval_s seconds and/or after
# after_events new events (0: never), and serves the new version when auto_activate is on.
# interval_s = 0.0
# after_events = 0
# auto_activate = true
# Versions kept on disk (the active one and the one before it are never deleted).
# keep_versions = 10

[serving]
# The surface of requests that name none.
# default_surface = "default"
# The longest list a request may ask for.
# max_k = 200
# Factor models over a catalog of at least this many items retrieve through an item index:
# "bounded" (exact, scoring items by decreasing norm until none left can enter the list),
# "hnsw", "pq" or "ivf" (approximate, faiss); "auto" takes bounded when it pays.
# ann_min_items = 50000
# retrieval = "auto"
# How often, in seconds, a worker looks for a new active version or a changed catalog.
# refresh_s = 1.0
# Recent items kept per user and per session, and how long a quiet session is kept.
# recent_items = 50
# session_ttl_s = 86400.0
# Store every served list as impression events (request_id, surface, position).
# log_impressions = true

[content]
# How old, in seconds, a worker's copy of slot definitions may be (changes made through a
# worker reach it at once, the other workers within this).
# refresh_s = 5.0
# An OpenAI-compatible chat-completions server that proposes copy for slots (a local
# llama.cpp or vLLM server): proposals are stored as pending variants until approved.
# Unset by default; an example:
# generation_url = "http://127.0.0.1:8080/v1"
# generation_model = "local"
# generation_api_key = "sent as a bearer token, when the server wants one"
# generation_timeout_s = 60.0

[experiments]
# How old, in seconds, a worker's copy of experiments may be (a start, stop or ramp made
# through a worker reaches it at once, the other workers within this).
# refresh_s = 5.0
# A long-term holdout: this share of users (or sessions) is kept out of every experiment
# that respects it, so that the lift of everything shipped can be measured against it
# months later. 0 by default; at most 0.5.
# holdout_share = 0.0
# The surface (pipeline) the holdout is served on an experiment's surface; unset, that
# surface's own pipeline. For example a non-personalized pipeline:
# holdout_surface = "popular"
# The holdout's hash salt: changing it draws a new holdout.
# holdout_salt = "holdout"

[privacy]
# The key of keyed hashes (erasure tombstones, the audit log, signed sessions), kept outside
# the database, readable by its owner only. Default: privacy.key in the data directory,
# created on first use. Losing it makes tombstones unmatchable, signed sessions invalid and
# a pseudonymized store unreadable by the ids your app uses.
# secret_file = "penchant-data/privacy.key"
# Store a keyed hash (HMAC-SHA-256 with the secret above) in place of every user id the
# service and the CLI receive: the database, online state, models and logs then hold only
# pseudonyms, and export and erasure still work by the id your app uses. Decide before the
# first person is stored: a store refuses to be opened the other way, or under another secret.
# pseudonymize = false
# An erasure removes the person at once; the item-side structures their data shaped (item
# factors, neighbour lists, popularity) are rebuilt by a retraining within this many seconds.
# rebuild_deadline_s = 86400.0
# Days each event type is kept before `penchant privacy retention` (and the service, daily)
# deletes it; "*" covers every type not named. Absent: kept until erased.
# retention_days = {}
# Differentially private reports: the epsilon of one report, and the total epsilon all
# reports of a tenant may spend in one window of dp_window_s seconds.
# dp_epsilon = 1.0
# dp_budget = 10.0
# dp_window_s = 86400.0
# The answer assumed for a purpose (personalization, analytics, advertising) a person never
# answered through the consent API: "granted" (the app records withdrawals) or "denied"
# (opt-in: only a recorded grant lets their events personalize their lists, train models
# and count in engagement reports).
# consent_default = "granted"

# An example surface: the stages run in order; sources add candidates, "score" combines
# their weights, then filters, business rules, re-rankers and explanations.
# [surfaces.product_page]
#   stages = [
#     { stage = "similar", model = "itemknn", n = 100, weight = 1.0 },
#     { stage = "model", model = "ials", n = 200, weight = 0.5 },
#     { stage = "trending", model = "popular", n = 100, weight = 0.2 },
#     { stage = "score" },
#     { stage = "filter", available_only = true, exclude_categories = ["adult"] },
#     { stage = "rules", rules = [
#         { action = "boost", match = { providers = ["house-brand"] }, factor = 1.3 },
#     ] },
#     { stage = "diversity", by = "category", strength = 0.3 },
#     { stage = "exploration", epsilon = 0.05 },
#     { stage = "explain", verb = "viewed" },
#   ]
"""


@dataclass(frozen=True)
class InitResult:
    """What `init_data_dir` found and made.

    Attributes:
        data_dir: the data directory.
        config_file: its penchant.toml.
        config_created: the config was written now (an existing one is never touched).
        key_file: the file holding the local admin key.
        key_created: a new admin key was made and written to `key_file` now.
        key_valid: the key in `key_file` opens this store (False: it belongs to another).
        key: the new admin key, only when `key_created`; show it only on request.
    """

    data_dir: Path
    config_file: Path
    config_created: bool
    key_file: Path
    key_created: bool
    key_valid: bool
    key: str | None = None


def init_data_dir(settings: Settings) -> InitResult:
    """Create the data directory, its config and store, and a local admin key; idempotent.

    The admin key is written to `settings.key_file`, readable by its owner only. Running
    it again changes nothing that exists.

    Args:
        settings: the settings of the data directory.

    Returns:
        What exists now and what was created.

    Raises:
        StoreError: the store cannot be opened.
        ConfigError: the store URL is not usable.
    """
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    config_file = data_dir / CONFIG_FILE
    config_created = _write_new(config_file, CONFIG_TEMPLATE, mode=0o644)
    store = settings_store(settings)
    try:
        key_file = settings.key_file
        key: str | None = None
        if key_file.exists():
            key_valid = _opens(store.keys, key_file.read_text(encoding="utf-8").strip())
        else:
            key = new_key(settings, store, settings.tenant, ["admin"], name="local admin")
            _write_new(key_file, key + "\n", mode=0o600)
            key_valid = True
    finally:
        store.close()
    return InitResult(
        data_dir=data_dir,
        config_file=config_file,
        config_created=config_created,
        key_file=key_file,
        key_created=key is not None,
        key_valid=key_valid,
        key=key,
    )


def _opens(keys: KeyStore, token: str) -> bool:
    try:
        authenticate(keys, token)
    except PenchantError:
        return False
    return True


def _write_new(path: Path, content: str, *, mode: int) -> bool:
    """Write a file that must not exist yet, created with `mode`; False if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    return True
