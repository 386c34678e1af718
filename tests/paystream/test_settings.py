from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from paystream.core.settings import Settings


def test_explicit_settings_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYSTREAM_PARTITIONS", "3")
    assert Settings().partitions == 8
    assert Settings.from_env().partitions == 3


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
