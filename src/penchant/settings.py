"""The one Settings tree: defaults < penchant.toml < PENCHANT_* environment, read at the edge."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from penchant.errors import ConfigError

CONFIG_FILE = "penchant.toml"
DB_FILE = "penchant.db"


class StoreSettings(BaseModel):
    """Where events, catalog and keys live."""

    url: str | None = Field(
        default=None,
        description="sqlite:///path or postgresql://...; default: the data directory's penchant.db",
    )
    synchronous: Literal["FULL", "NORMAL", "OFF"] = Field(
        default="FULL",
        description="SQLite durability: FULL survives power loss, NORMAL only a process crash",
    )
    busy_timeout_ms: int = Field(default=30_000, ge=0)


class StateSettings(BaseModel):
    """Online state (recent events, counters, bandit state): memory:// or redis://host:port/db."""

    url: str = "memory://"


class ServiceSettings(BaseModel):
    """The HTTP service."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_batch: int = Field(default=10_000, ge=1)
    workers: int = Field(default=1, ge=1)
    pin_workers: bool = Field(
        default=True,
        description=(
            "with several workers and at least as many CPUs (Linux), run each worker's "
            "request thread on a CPU of its own"
        ),
    )
    rate_limit: float = Field(
        default=0.0,
        ge=0.0,
        description="requests a second each API key may make on average (0: no limit)",
    )
    rate_burst: float = Field(
        default=100.0, ge=1.0, description="requests a key may make at once above its rate"
    )
    key_cache_s: float = Field(
        default=5.0, ge=0.0, description="how long a worker trusts a looked-up API key"
    )


class EventSettings(BaseModel):
    """The event vocabulary beyond the built-in types."""

    custom_types: list[str] = Field(default_factory=list)

    @field_validator("custom_types")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"custom event type {name!r} must be letters, digits, _ or -")
        return value


class TrainingSettings(BaseModel):
    """What `penchant train` and the service's background trainer fit, and when."""

    models: list[str] = Field(
        default_factory=lambda: ["popular", "itemknn", "ials", "taste"],
        description="the models one training run fits into one versioned bundle",
    )
    params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="hyperparameters per model name"
    )
    interval_s: float = Field(
        default=0.0, ge=0.0, description="retrain this often in the service (0: never)"
    )
    after_events: int = Field(
        default=0, ge=0, description="retrain after this many new events (0: never)"
    )
    auto_activate: bool = Field(default=True, description="serve a new version once trained")
    keep_versions: int = Field(default=10, ge=1, description="versions kept on disk")


class ServingSettings(BaseModel):
    """How the service answers recommendation requests."""

    default_surface: str = "default"
    max_k: int = Field(default=200, ge=1)
    ann_min_items: int = Field(
        default=50_000, ge=0, description="catalogs this large use an item index"
    )
    retrieval: Literal["auto", "bounded", "hnsw", "pq", "ivf"] = Field(
        default="auto",
        description="the item index of factor models: auto (bounded when it pays, else hnsw)",
    )
    refresh_s: float = Field(
        default=1.0, gt=0.0, description="how often a worker looks for a new active version"
    )
    recent_items: int = Field(
        default=50, ge=1, description="recent items kept per user and per session"
    )
    session_ttl_s: float = Field(default=86_400.0, gt=0.0)
    log_impressions: bool = Field(default=True, description="store served lists as impressions")


class ContentSettings(BaseModel):
    """Dynamic content: slots, their decisions, and offline copy generation."""

    refresh_s: float = Field(
        default=5.0, gt=0.0, description="how old a worker's copy of slot definitions may be"
    )
    generation_url: str | None = Field(
        default=None,
        description="an OpenAI-compatible chat-completions server that proposes copy "
        "(such as http://127.0.0.1:8080/v1); proposals wait for approval",
    )
    generation_model: str = Field(default="local", description="the model name to ask for")
    generation_api_key: str | None = Field(
        default=None, description="sent as a bearer token, when the server wants one"
    )
    generation_timeout_s: float = Field(default=60.0, gt=0.0)


class ExperimentSettings(BaseModel):
    """A/B/n experiments: how fresh each worker's copy is, and the long-term holdout."""

    refresh_s: float = Field(
        default=5.0, gt=0.0, description="how old a worker's copy of experiments may be"
    )
    holdout_share: float = Field(
        default=0.0,
        ge=0.0,
        le=0.5,
        description="the share of units kept out of every experiment that respects the "
        "holdout, for years if need be: the baseline that long-term lift is measured against",
    )
    holdout_surface: str | None = Field(
        default=None,
        description="the surface whose pipeline the holdout is served on an experiment's "
        "surface (unset: that surface's own pipeline, as if no experiment ran)",
    )
    holdout_salt: str = Field(
        default="holdout",
        min_length=1,
        description="the holdout's hash salt: changing it draws a new holdout",
    )


class SurfaceSettings(BaseModel):
    """One surface (a page, a channel, an arm): its pipeline as an ordered list of stages.

    Each stage is a table with `stage` (its kind) and that stage's options; the ranking
    package validates them when the service starts.
    """

    stages: list[dict[str, Any]] = Field(default_factory=list)


class PrivacySettings(BaseModel):
    """Erasure, retention, pseudonymization and differentially private reports."""

    secret_file: Path | None = Field(
        default=None,
        description="the key of keyed hashes (tombstones, pseudonyms, ids in logs), kept "
        "outside the database; default: privacy.key in the data directory",
    )
    pseudonymize: bool = Field(
        default=False,
        description="store a keyed hash (HMAC with the secret file) in place of every user "
        "id the service and the CLI receive; set it before the first person is stored",
    )
    rebuild_deadline_s: float = Field(
        default=86_400.0,
        gt=0.0,
        description="an erasure's retraining (item-side structures) finishes within this",
    )
    retention_days: dict[str, float] = Field(
        default_factory=dict,
        description="days each event type is kept ('*': every other type); absent: forever",
    )
    dp_epsilon: float = Field(default=1.0, gt=0.0, description="epsilon of one DP report")
    dp_budget: float = Field(
        default=10.0, gt=0.0, description="total epsilon of the DP reports of one window"
    )
    dp_window_s: float = Field(default=86_400.0, gt=0.0, description="the DP budget's window")
    consent_default: Literal["granted", "denied"] = Field(
        default="granted",
        description="the answer assumed for a purpose a person never answered: granted (the "
        "app records withdrawals) or denied (opt-in: only a recorded grant counts)",
    )


class Settings(BaseSettings):
    """Everything configurable. Build it with `load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix="PENCHANT_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Path("penchant-data")
    tenant: str = "default"
    store: StoreSettings = Field(default_factory=StoreSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    content: ContentSettings = Field(default_factory=ContentSettings)
    experiments: ExperimentSettings = Field(default_factory=ExperimentSettings)
    surfaces: dict[str, SurfaceSettings] = Field(default_factory=dict)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file values, which arrive as init arguments.
        return (env_settings, init_settings)

    @property
    def store_url(self) -> str:
        """The store URL, defaulting to the SQLite file in the data directory."""
        return self.store.url or f"sqlite:///{self.data_dir / DB_FILE}"

    @property
    def key_file(self) -> Path:
        """Where `penchant init` keeps the local admin key."""
        return self.data_dir / "admin.key"

    @property
    def keys_marker_file(self) -> Path:
        """The file every revocation changes, so that workers drop cached keys at once."""
        return self.data_dir / "keys.generation"

    @property
    def privacy_secret_file(self) -> Path:
        """Where the key of keyed hashes lives (created by `penchant init` or on first use)."""
        return self.privacy.secret_file or self.data_dir / "privacy.key"


def load_settings(data_dir: Path | str | None = None, **overrides: Any) -> Settings:
    """Read settings for a data directory.

    Args:
        data_dir: the data directory; default `PENCHANT_DATA_DIR` or `./penchant-data`.
        overrides: top-level values that win over the file (not over the environment).

    Returns:
        The validated settings.

    Raises:
        ConfigError: the config file or a value in it is invalid.
    """
    resolved = Path(data_dir or os.environ.get("PENCHANT_DATA_DIR") or "penchant-data")
    values: dict[str, Any] = {}
    path = resolved / CONFIG_FILE
    if path.exists():
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    values.update(overrides)
    values["data_dir"] = resolved
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"config {where}: {first['msg']}", field=where) from exc
    # The resolved directory wins: an explicit --data-dir must beat the environment.
    settings.data_dir = resolved
    return settings


def settings_environment(settings: Settings) -> dict[str, str]:
    """`PENCHANT_*` variables from which `load_settings()` rebuilds exactly these settings
    (how service workers and training children get the settings of their parent)."""
    env = {"PENCHANT_DATA_DIR": str(settings.data_dir)}
    for name, value in settings.model_dump(mode="json", exclude={"data_dir"}).items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        env[f"PENCHANT_{name.upper()}"] = text
    return env
