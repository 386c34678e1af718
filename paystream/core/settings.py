"""Settings: read from the environment here and nowhere else.

`Settings(...)` takes explicit values only (tests and library use);
`Settings.from_env()` adds the `PAYSTREAM_*` environment. Components receive
the object as an argument and never look at `os.environ` themselves.
Secrets are `SecretStr`, so a repr or a log line never shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from schemas.topics import TopicCatalog

__all__ = ["DEFAULT_PARTITIONS", "DEFAULT_PAYPAL_CERT_HOSTS", "EMBEDDED_PARTITIONS", "ENVELOPE_OVERHEAD_BYTES",
           "EXACTLY_ONCE_NEEDS_KAFKA", "KAFKA_DEFAULT_MESSAGE_MAX_BYTES", "Settings"]

DEFAULT_PAYPAL_CERT_HOSTS = (
    "api.paypal.com",
    "api-m.paypal.com",
    "api.sandbox.paypal.com",
    "api-m.sandbox.paypal.com",
)
MIN_DEDUP_TTL_S = 259_200  # 72 h: the providers' retry horizon
KAFKA_DEFAULT_MESSAGE_MAX_BYTES = 1_048_588
"""Apache Kafka's default `message.max.bytes` (broker) / `max.message.bytes` (topic): the largest record batch."""
ENVELOPE_OVERHEAD_BYTES = 68 * 1024
"""What a `WebhookEnvelope` record adds to its body, bounded: the kept request headers (the ingress caps a
request head at 64 KiB) plus ids, key, Kafka headers and batch framing (well under 4 KiB)."""

DEFAULT_PARTITIONS = 8
EMBEDDED_PARTITIONS = 2
"""Quirk 9: a Fetch on the embedded broker lists every batch stored in each partition it reads, and every
produce request stores one batch per partition, so its cost grows with partitions times history. One worker gains
nothing from more partitions than two (a second worker can still share them). bench/reports/e2e-embedded-2-
partitions.md (2026-12-07): worst p99 338 ms over five 60 s runs at 500 req/s, against 744-1,082 ms at 8."""

EXACTLY_ONCE_NEEDS_KAFKA = (
    "PAYSTREAM_PROCESSING_GUARANTEE=exactly_once needs Apache Kafka: the embedded broker has no transactions "
    "(DESIGN.md quirk 1). Use at_least_once there (effectively-once through keyed dedup), or point "
    "PAYSTREAM_KAFKA_BOOTSTRAP at Apache Kafka with PAYSTREAM_EMBEDDED_BROKER=false")

CommaList = Annotated[list[str], NoDecode]
SecretList = Annotated[list[SecretStr], NoDecode]
SecretMap = Annotated[dict[str, list[SecretStr]], NoDecode]


_OPTIONAL_BOOL: TypeAdapter[bool | None] = TypeAdapter(bool | None)


def _embedded(flag: bool | None, bootstrap: str) -> bool:
    """`EMBEDDED_BROKER` when set, else whether `KAFKA_BOOTSTRAP` is empty (`make run` starts the embedded one)."""
    return flag if flag is not None else not bootstrap


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob paystream has; the env name is `PAYSTREAM_` + the field name in upper case."""

    model_config = SettingsConfigDict(env_prefix="PAYSTREAM_", frozen=True, extra="forbid")

    # Kafka
    kafka_bootstrap: str = Field("", description="empty = start the embedded broker")
    embedded_broker: bool | None = Field(
        None, description="the bootstrap is an embedded (Tansu) broker; default: true when KAFKA_BOOTSTRAP is empty"
    )
    topic_prefix: str = ""
    partitions: int = Field(DEFAULT_PARTITIONS, ge=1, description="of every topic; unset = 8, or 2 on the embedded "
                                                                  "broker (compat quirk 9: each of its fetches lists "
                                                                  "every batch stored in each partition it reads)")
    replication_factor: int = Field(1, ge=1)
    schema_registry_url: str = Field("", description="Confluent-compatible registry; empty = single-object encoding")
    group_session_timeout_s: float = Field(
        30.0, ge=6, le=1800, description="Apache Kafka consumer groups (workers, sink): how long a killed member's "
                                         "partitions wait before the group hands them on; the embedded broker "
                                         "always uses 2 s (quirk 5)")

    # Ingress: verification
    stripe_webhook_secrets: SecretList = Field(default_factory=list, description="comma list, several during rotation")
    stripe_tolerance_s: int = Field(300, ge=1, description="oldest accepted Stripe-Signature timestamp")
    stripe_future_tolerance_s: int = Field(300, ge=0, description="newest accepted timestamp ahead of our clock")
    paypal_webhook_id: CommaList = Field(default_factory=list, description="comma list of our PayPal webhook ids")
    paypal_cert_cache_dir: Path | None = Field(None, description="default <DATA_DIR>/paypal-certs")
    paypal_cert_hosts: CommaList = Field(default_factory=lambda: list(DEFAULT_PAYPAL_CERT_HOSTS))
    paypal_trust_roots_file: Path | None = Field(None, description="PEM bundle of extra trusted roots")
    paypal_tolerance_s: int = Field(259_200, ge=0, description="oldest accepted transmission time; 0 = no check")
    paypal_future_tolerance_s: int = Field(300, ge=0)
    paypal_cert_fetch_timeout_s: float = Field(5.0, gt=0)
    standard_webhook_secrets: SecretMap = Field(
        default_factory=dict, description="comma list of source=whsec_… pairs; a source may repeat (rotation)"
    )
    standard_tolerance_s: int = Field(300, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1024, description="capped at KAFKA_MAX_MESSAGE_BYTES minus the "
                                                                 "envelope overhead (see body_limit_bytes)")
    kafka_max_message_bytes: int = Field(KAFKA_DEFAULT_MESSAGE_MAX_BYTES, ge=ENVELOPE_OVERHEAD_BYTES + 1024,
                                         description="the raw topic's max.message.bytes (Kafka's default); raise "
                                                     "it with the broker/topic config to accept larger bodies")

    # Ingress: publishing
    publish_timeout_s: float = Field(5.0, gt=0, description="broker ack bound before answering 503")
    retry_after_s: int = Field(5, ge=1)
    publish_linger_ms: int | None = Field(None, ge=0, le=100, description="producer linger: concurrent requests "
                                          "share a produce request (fewer syscalls, less CPU); unset = 1 on Apache "
                                          "Kafka, 100 on the embedded broker (compat quirk 9)")
    ingress_producer: Literal["confluent", "aiokafka"] = Field(
        "confluent", description="the ingress's Kafka client: librdkafka (confluent-kafka) or aiokafka")

    # Streams
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", description="exactly_once = Faust transactions: Apache Kafka only (the embedded broker has "
                                     "none); at-least-once + keyed dedup is effectively-once on either")
    dedup_ttl_s: int = Field(302_400, ge=MIN_DEDUP_TTL_S)
    stream_batch_size: int = Field(1000, ge=1, description="records per worker batch")
    stream_batch_ms: int = Field(50, ge=1, description="longest wait to fill a worker batch")
    worker_id: str = Field("", description="distinguishes workers on one host; default: the web port")
    worker_stop_timeout_s: float = Field(40.0, gt=0, description="longest clean stop after SIGTERM/SIGINT; then the "
                                                                  "worker exits anyway (a stop against an unreachable "
                                                                  "broker otherwise waits out every client timeout)")
    gc_young_threshold: int = Field(100_000, ge=0, description="the worker's, ingress's and sink's young-generation "
                                                                "garbage-collection threshold (CPython: 700), with "
                                                                "start-up objects frozen; 0 keeps CPython's defaults")
    table_standby_replicas: int = Field(1, ge=0, description="standby copies of each table partition")
    reconciliation: bool = Field(True, description="run windowed reconciliation in the workers (costs CPU per "
                                                    "event; off where no ledger is imported)")
    recon_window_s: int = Field(3600, ge=1)
    recon_grace_s: int = Field(600, ge=0)
    state_retention_s: int = Field(730 * 86_400, ge=MIN_DEDUP_TTL_S,
                                   description="a payment's worker state (and its alias entries) is deleted this "
                                               "long after its last event; its sink row stays")
    held_release_s: int = Field(72 * 3600, ge=0,
                                description="an event that names only a charge or capture waits for the event "
                                            "naming that one's payment; after this long (event time) it is "
                                            "released under the id it names, as its own payment; 0 = wait "
                                            "indefinitely; at most PAYSTREAM_STATE_RETENTION_S")
    state_sweep_interval_s: float = Field(3.0, gt=0, description="per partition, how often the state agent looks "
                                                                    "at one slice of its table for expired entries")
    recon_retention_s: int = Field(180 * 86_400, ge=0, description="how long after it closes a window still takes "
                                                                    "corrections; then its worker state is deleted")
    recon_idle_s: float = Field(60.0, gt=0, description="a partition with nothing to read this long stops "
                                                          "holding reconciliation windows open")

    # Sink
    sink_url: str = Field("", description="default sqlite:///<DATA_DIR>/paystream.db")
    sink_batch_size: int = Field(2000, ge=1)
    sink_batch_ms: int = Field(200, ge=1)

    # Ops and processes
    data_dir: Path = Path("./data")
    ops_token: SecretStr | None = None
    log_format: Literal["json", "console"] = "json"
    log_level: str = "INFO"
    ingress_host: str = "127.0.0.1"
    ingress_port: int = Field(8080, ge=0, le=65535)
    ingress_fastpath: bool = Field(True, description="webhook POSTs bypass FastAPI's middleware and router "
                                                     "(ingress/fastpath.py); false = the plain FastAPI routes, "
                                                     "for the benchmark's A/B")
    worker_port: int = Field(6066, ge=0, le=65535)
    sink_metrics_port: int = Field(9108, ge=0, le=65535)
    broker_port: int = Field(9092, ge=0, le=65535)
    otlp_endpoint: str = Field("", description="OTLP/HTTP traces endpoint, e.g. http://collector:4318; empty = off")
    ops_ingress_url: str = Field("", description="where the ops console checks the ingress; default local port")
    ops_sink_url: str = Field("", description="where the ops console checks the sink; default local metrics port")
    environment: Literal["development", "production"] = "production"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings from `PAYSTREAM_*` variables; explicit overrides win."""
        return _EnvSettings(**overrides)

    @field_validator("stripe_webhook_secrets", mode="before")
    @classmethod
    def _split_secrets(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("paypal_webhook_id", "paypal_cert_hosts", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("paypal_cert_hosts")
    @classmethod
    def _lower_hosts(cls, value: list[str]) -> list[str]:
        return [host.lower().rstrip(".") for host in value]

    @field_validator("standard_webhook_secrets", mode="before")
    @classmethod
    def _parse_source_secrets(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        result: dict[str, list[str]] = {}
        for pair in _split(value):
            source, sep, secret = pair.partition("=")
            if not sep or not source.strip() or not secret.strip():
                raise ValueError("expected source=secret pairs separated by commas")
            result.setdefault(source.strip(), []).append(secret.strip())
        return result

    @model_validator(mode="before")
    @classmethod
    def _default_partitions(cls, data: Any) -> Any:
        """PARTITIONS unset: 8, or fewer on the embedded broker (`EMBEDDED_PARTITIONS`)."""
        if not isinstance(data, dict) or data.get("partitions") is not None:
            return data
        try:
            flag = _OPTIONAL_BOOL.validate_python(data.get("embedded_broker"))
        except ValidationError:
            return data  # the field's own validation reports it
        if not _embedded(flag, data.get("kafka_bootstrap") or ""):
            return data
        return {**data, "partitions": EMBEDDED_PARTITIONS}

    @model_validator(mode="after")
    def _check_processing_guarantee(self) -> Settings:
        if self.processing_guarantee == "exactly_once" and self.uses_embedded_broker:
            raise ValueError(EXACTLY_ONCE_NEEDS_KAFKA)
        return self

    @model_validator(mode="after")
    def _check_production_secrets(self) -> Settings:
        token = self.ops_token.get_secret_value() if self.ops_token is not None else None
        if self.environment == "production" and token is not None and len(token) < 16:
            raise ValueError("PAYSTREAM_OPS_TOKEN must be at least 16 characters outside development")
        return self

    # Derived values -------------------------------------------------------

    @property
    def group_session_timeout_ms(self) -> int:
        return int(self.group_session_timeout_s * 1000)

    @property
    def uses_embedded_broker(self) -> bool:
        """Apply the embedded broker's quirk handling (see `paystream.core.broker.compat`)."""
        return _embedded(self.embedded_broker, self.kafka_bootstrap)

    @property
    def topics(self) -> TopicCatalog:
        return TopicCatalog(prefix=self.topic_prefix, partitions=self.partitions)

    @property
    def resolved_sink_url(self) -> str:
        return self.sink_url or f"sqlite:///{(self.data_dir / 'paystream.db').as_posix()}"

    @property
    def resolved_paypal_cert_cache_dir(self) -> Path:
        return self.paypal_cert_cache_dir or self.data_dir / "paypal-certs"

    @property
    def body_limit_bytes(self) -> int:
        """The ingress's 413 limit: MAX_BODY_BYTES, capped so every accepted body's envelope fits on the broker."""
        return min(self.max_body_bytes, self.kafka_max_message_bytes - ENVELOPE_OVERHEAD_BYTES)

    @property
    def publish_max_request_size(self) -> int:
        """The ingress producer's `max_request_size`: the largest envelope an accepted body can make."""
        return self.body_limit_bytes + ENVELOPE_OVERHEAD_BYTES

    def to_env(self) -> dict[str, str]:
        """The `PAYSTREAM_*` variables that recreate these settings in a child process."""
        env: dict[str, str] = {}
        for name, value in self:
            if value is None:
                continue
            key = f"PAYSTREAM_{name.upper()}"
            if isinstance(value, SecretStr):
                env[key] = value.get_secret_value()
            elif isinstance(value, list):
                env[key] = ",".join(v.get_secret_value() if isinstance(v, SecretStr) else str(v) for v in value)
            elif isinstance(value, dict):
                env[key] = ",".join(
                    f"{source}={secret.get_secret_value()}" for source, secrets in value.items() for secret in secrets
                )
            else:
                env[key] = str(value)
        return env


class _EnvSettings(Settings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)
