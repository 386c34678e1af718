from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from paystream.core.settings import DEFAULT_PARTITIONS, EMBEDDED_PARTITIONS, Settings


def test_explicit_settings_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYSTREAM_PARTITIONS", "3")
    assert Settings().partitions == EMBEDDED_PARTITIONS
    assert Settings.from_env().partitions == 3


@pytest.mark.parametrize(("env", "partitions"), [
    ({}, EMBEDDED_PARTITIONS),  # no bootstrap: `make run`'s embedded broker
    ({"PAYSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:9092", "PAYSTREAM_EMBEDDED_BROKER": "true"}, EMBEDDED_PARTITIONS),
    ({"PAYSTREAM_KAFKA_BOOTSTRAP": "kafka:9092"}, DEFAULT_PARTITIONS),
    ({"PAYSTREAM_KAFKA_BOOTSTRAP": "kafka:9092", "PAYSTREAM_EMBEDDED_BROKER": "false"}, DEFAULT_PARTITIONS),
    ({"PAYSTREAM_EMBEDDED_BROKER": "true", "PAYSTREAM_PARTITIONS": "6"}, 6),
    ({"PAYSTREAM_KAFKA_BOOTSTRAP": "kafka:9092", "PAYSTREAM_PARTITIONS": "12"}, 12),
])
def test_partitions_default_to_fewer_on_the_embedded_broker(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                            partitions: int) -> None:
    """Quirk 9: each embedded Fetch lists every stored batch of each partition; PARTITIONS, when set, wins."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    assert settings.partitions == settings.topics.partitions == partitions
    assert settings.to_env()["PAYSTREAM_PARTITIONS"] == str(partitions)  # what `make run` hands its children


def test_a_bad_embedded_broker_flag_is_reported_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYSTREAM_EMBEDDED_BROKER", "maybe")
    with pytest.raises(ValidationError, match="embedded_broker"):
        Settings.from_env()


def test_comma_lists_and_source_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYSTREAM_STRIPE_WEBHOOK_SECRETS", "whsec_a, whsec_b")
    monkeypatch.setenv("PAYSTREAM_STANDARD_WEBHOOK_SECRETS", "acme=whsec_AAAA==,acme=whsec_BB,beta=whsec_C")
    monkeypatch.setenv("PAYSTREAM_PAYPAL_WEBHOOK_ID", "WH1,WH2")
    monkeypatch.setenv("PAYSTREAM_PAYPAL_CERT_HOSTS", "API.PayPal.com.")
    settings = Settings.from_env()
    assert [s.get_secret_value() for s in settings.stripe_webhook_secrets] == ["whsec_a", "whsec_b"]
    assert {k: [s.get_secret_value() for s in v] for k, v in settings.standard_webhook_secrets.items()} == \
        {"acme": ["whsec_AAAA==", "whsec_BB"], "beta": ["whsec_C"]}
    assert settings.paypal_webhook_id == ["WH1", "WH2"]
    assert settings.paypal_cert_hosts == ["api.paypal.com"]
    assert "whsec_a" not in repr(settings)


def test_round_trip_through_env(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(stripe_webhook_secrets=["whsec_x"], standard_webhook_secrets={"a": ["whsec_y"]},
                        partitions=5, data_dir=Path("/tmp/x"), ops_token="t" * 20)
    for key, value in original.to_env().items():
        monkeypatch.setenv(key, value)
    assert Settings.from_env().model_dump() == original.model_dump()


def test_defaults_and_derived_values() -> None:
    settings = Settings(data_dir=Path("/srv/ps"))
    assert settings.resolved_sink_url == "sqlite:////srv/ps/paystream.db"
    assert settings.resolved_paypal_cert_cache_dir == Path("/srv/ps/paypal-certs")
    assert settings.uses_embedded_broker
    assert not Settings(kafka_bootstrap="kafka:9092").uses_embedded_broker
    assert settings.max_body_bytes == 1_048_576 and settings.stripe_tolerance_s == 300
    assert settings.dedup_ttl_s >= 259_200


@pytest.mark.parametrize("bad", [{"dedup_ttl_s": 3600}, {"partitions": 0}, {"log_format": "xml"},
                                 {"ops_token": "short"}, {"unknown_knob": 1}])
def test_invalid_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]
