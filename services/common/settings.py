"""The one settings object. Every value can be set from the environment with the MUTATOR_ prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service, broker, database and dev-stack settings (env prefix MUTATOR_)."""

    model_config = SettingsConfigDict(env_prefix="MUTATOR_", extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers, host:port[,host:port]")
    redis_url: str = Field("redis://127.0.0.1:16379/0", description="Redis URL for locks and the decision cache")
    database_url: str = Field(
        "sqlite+aiosqlite:///var/mutator.db", description="SQLAlchemy async URL (SQLite or PostgreSQL)"
    )
    topic_prefix: str = Field("", description="Prefix on every topic name; isolates test runs on one broker")
    partitions: int = Field(6, description="Partitions per topic when `dev up` creates topics")
    fetch_max_wait_ms: int = Field(10, description="Consumer fetch wait; ~10 ms on the embedded broker")
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 1000
    max_poll_interval_ms: int = Field(
        120_000, description="Longest gap between polls; must exceed the infra retry budget of one handler call"
    )
    max_batch: int = Field(500, description="Most records one handler call (and one transaction) takes")
    policies_file: Path | None = Field(None, description="YAML policy file; bundled example when unset")
    directory_file: Path | None = Field(None, description="YAML approver directory; bundled example when unset")
    data_dir: Path = Field(Path("var"), description="Where the embedded stack keeps SQLite, logs and pid files")
    start_kafka: bool = Field(True, description="`dev up` starts the embedded broker (false: use kafka_bootstrap)")
    start_redis: bool = Field(True, description="`dev up` starts embedded Redis (false: use redis_url)")
    lock_ttl_ms: int = Field(10_000, description="Per-state Redis lock lifetime")
    decision_cache_ttl_s: int = Field(3600, description="How long the recent-decision cache keeps an entry")
    relay_poll_s: float = Field(1.0, description="Outbox relay fallback poll interval (it is woken on commit)")
    relay_max_attempts: int = Field(5, description="Publish attempts before an outbox row is marked failed")
    infra_retry_attempts: int = Field(5, description="Bounded retries of a transient infrastructure error")
    infra_retry_timeout_s: float = Field(30.0, description="Total time budget of those retries")
    document_size_limit: int = Field(256 * 1024, description="MutationExecuted omits `document` above this")
    accept_unsigned_approvals: bool = Field(
        False, description="DEVELOPMENT ONLY: accept approvals without a signature (`dev up` warns)"
    )
    approval_clock_skew_s: int = Field(300, description="How far signed_at may be from now")
    sweep_interval_s: float = Field(1.0, description="How often the approval service expires due requests")
    operator_role: str = Field("operator", description="Directory role allowed to cancel others' requests")
    log_format: str = Field("auto", description="auto | json | console")
    log_level: str = Field("info", description="debug | info | warning | error")

    def topic(self, name: str) -> str:
        """The full topic name for a catalog name."""
        return f"{self.topic_prefix}{name}"
