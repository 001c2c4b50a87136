from __future__ import annotations

import pytest

from scalper_shared.settings import ServiceSettings, SettingsError, load_settings


def test_bad_redis_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "http://nope")
    with pytest.raises(SettingsError) as excinfo:
        load_settings(ServiceSettings)
    assert "REDIS_URL='http://nope'" in str(excinfo.value)


def test_postgres_url_is_normalised_to_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h:5432/db")
    assert load_settings(ServiceSettings).database_url == "postgresql+psycopg://u@h:5432/db"


def test_service_port_alias_is_reported_by_its_own_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from scalper_policy.settings import PolicySettings

    monkeypatch.setenv("POLICY_HTTP_PORT", "99999")
    with pytest.raises(SettingsError) as excinfo:
        load_settings(PolicySettings)
    assert "POLICY_HTTP_PORT='99999'" in str(excinfo.value)
