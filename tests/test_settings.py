"""Settings come from WATTLINE_* variables and .env, and bad values name the variable."""

from pathlib import Path

import pytest

from orchestration.database import Database
from orchestration.settings import SettingsError, load_settings


def test_defaults_run_everything_locally(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WATTLINE_HOME", raising=False)
    settings = load_settings()
    assert settings.database_url is None
    assert settings.home == tmp_path / ".wattline"
    assert settings.dagster_home == tmp_path / ".wattline" / "dagster"
    assert settings.uses_simulator
    assert settings.webhook_port == 8787 and settings.ui_port == 3000


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("mysql://user@host/db", "scheme 'mysql'"),
        ("postgresql://user@host:5432", "names no database"),
        ("postgresql://user@host:notaport/db", "bad port"),
        ("postgresql:///db", "names no host"),
    ],
)
def test_bad_database_url_names_the_variable_and_the_problem(monkeypatch, url, complaint):
    monkeypatch.setenv("WATTLINE_DATABASE_URL", url)
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    message = str(excinfo.value)
    assert "WATTLINE_DATABASE_URL" in message
    assert complaint in message


def test_bad_source_url_and_port_are_reported_together(monkeypatch):
    monkeypatch.setenv("WATTLINE_WEATHER_API_URL", "ftp://example")
    monkeypatch.setenv("WATTLINE_WEBHOOK_PORT", "99999")
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    assert "WATTLINE_WEATHER_API_URL" in str(excinfo.value)
    assert "WATTLINE_WEBHOOK_PORT" in str(excinfo.value)


def test_unix_socket_url_is_accepted(monkeypatch):
    url = "postgresql://postgres:@/wattline?host=/tmp/some/socket"
    monkeypatch.setenv("WATTLINE_DATABASE_URL", url)
    assert load_settings().database_url == url


def test_dotenv_file_is_read(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("WATTLINE_SIM_FACILITIES=7\nWATTLINE_TELEMETRY_API_URL=http://meters.example:8080/\n")
    settings = load_settings()
    assert settings.sim_facilities == 7
    assert settings.telemetry_api_url == "http://meters.example:8080"
    # The feeds left unset are the ones the simulator serves.
    assert settings.unset_sources == ["WATTLINE_WEATHER_API_URL", "WATTLINE_PRICE_API_URL", "WATTLINE_CARBON_API_URL"]


def test_the_first_read_pins_home_and_dotenv_for_the_process(monkeypatch, tmp_path):
    """`make demo` with the defaults: the relative home and `.env` are read where the
    command started; dbt later moves the working directory into dbt_project/ and the
    settings are read again (and by every child process): they must not move with it."""
    from orchestration.settings import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WATTLINE_HOME", raising=False)
    monkeypatch.delenv("WATTLINE_SIM_FACILITIES", raising=False)  # restored after: the pin exports it
    (tmp_path / ".env").write_text("WATTLINE_SIM_FACILITIES=7\n")
    get_settings.cache_clear()
    try:
        first = get_settings()
        (tmp_path / "dbt_project").mkdir()
        monkeypatch.chdir(tmp_path / "dbt_project")
        get_settings.cache_clear()
        again = get_settings()
    finally:
        get_settings.cache_clear()
    assert first.home == again.home == tmp_path / ".wattline"
    assert first.sim_facilities == again.sim_facilities == 7
    # What a child process (webserver, daemon, run worker) inherits.
    import os

    assert os.environ["WATTLINE_HOME"] == str(tmp_path / ".wattline")


def test_the_simulator_stands_in_only_while_a_source_is_unset(monkeypatch):
    for name in ("TELEMETRY", "WEATHER", "PRICE", "CARBON"):
        monkeypatch.setenv(f"WATTLINE_{name}_API_URL", f"https://{name.lower()}.example")
    assert not load_settings().uses_simulator
    monkeypatch.delenv("WATTLINE_PRICE_API_URL")
    assert load_settings().uses_simulator


def test_environment_wins_over_dotenv(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("WATTLINE_SIM_FACILITIES=7\n")
    monkeypatch.setenv("WATTLINE_SIM_FACILITIES", "3")
    assert load_settings().sim_facilities == 3


def test_passwords_stay_out_of_the_settings_repr(monkeypatch):
    monkeypatch.setenv("WATTLINE_DATABASE_URL", "postgresql://app:s3cret@db.internal:5432/energy")
    assert "s3cret" not in repr(load_settings())


def test_one_url_becomes_every_consumer_s_connection():
    socket_db = Database(url="postgresql://postgres:@/wattline?host=/tmp/pg%20data")
    # Every connection gives up after 10 s and notices a vanished server (issue 18).
    assert socket_db.sqlalchemy_url == (
        "postgresql+psycopg2://postgres:@/wattline?host=/tmp/pg%20data"
        "&connect_timeout=10&keepalives_idle=30&keepalives_interval=10&keepalives_count=3"
    )
    assert "connect_timeout=3&" in Database(url="postgresql://h/db?connect_timeout=3").sqlalchemy_url
    env = socket_db.dbt_env()
    assert env["WATTLINE_PG_HOST"] == "/tmp/pg data"
    assert env["WATTLINE_PG_DBNAME"] == "wattline"
    assert env["WATTLINE_PG_PORT"] == "5432"

    tcp = Database(url="postgresql://app:p%40ss@db.internal:6432/energy?sslmode=require")
    env = tcp.dbt_env()
    assert (env["WATTLINE_PG_HOST"], env["WATTLINE_PG_PORT"]) == ("db.internal", "6432")
    assert (env["WATTLINE_PG_USER"], env["WATTLINE_PG_PASSWORD"]) == ("app", "p@ss")
    assert env["WATTLINE_PG_SSLMODE"] == "require"
    assert tcp.with_name("dagster").url == "postgresql://app:p%40ss@db.internal:6432/dagster?sslmode=require"
    assert "p%40ss" not in tcp.redacted_url and "***" in tcp.redacted_url


def test_dbt_profile_reads_the_same_variables():
    profile = (Path(__file__).parents[1] / "dbt_project" / "profiles.yml").read_text()
    for variable in Database(url="postgresql://u@h/d").dbt_env():
        assert f"env_var('{variable}'" in profile


@pytest.mark.parametrize(
    ("secret", "complaint"),
    [
        ("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "expected whsec_ followed by base64"),
        ("whsec_not*base64", "not valid base64"),
        ("whsec_c2hvcnQ=", "the key is 5 bytes"),
    ],
)
def test_a_bad_webhook_secret_is_refused_without_repeating_it(monkeypatch, secret, complaint):
    monkeypatch.setenv("WATTLINE_WEBHOOK_SECRET", secret)
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    message = str(excinfo.value)
    assert "WATTLINE_WEBHOOK_SECRET" in message and complaint in message
    assert secret not in message


def test_webhook_secrets_stay_out_of_the_settings_repr(monkeypatch):
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    monkeypatch.setenv("WATTLINE_WEBHOOK_SECRET", secret)
    token = "vtn-" + "Zq8xW3mK7pR2tY9vB4nC6dF1gH5jL0sA"
    monkeypatch.setenv("WATTLINE_OPENADR_TOKEN", token)
    settings = load_settings()
    assert settings.webhook_secret.get_secret_value() == secret
    assert secret not in repr(settings) and token not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("WATTLINE_OPENADR_TOKEN", "x", "the token is 1 characters; use at least 32"),
        ("WATTLINE_OPENADR_TOKEN", "vtn-token-123", "the token is 13 characters; use at least 32"),
        ("WATTLINE_OPENADR_TOKEN", "a" * 64, "repeats 1 different character(s)"),
        ("WATTLINE_OPENADR_TOKEN", "abab" * 10, "repeats 2 different character(s)"),
        ("WATTLINE_OPENADR_TOKEN", "Zq8xW3mK7pR2tY9v B4nC6dF1gH5jL0sA", "spaces or control characters"),
        ("WATTLINE_BI_PASSWORD", "s3cret", "the password is 6 characters; use at least 16"),
        ("WATTLINE_BI_PASSWORD", "1111111111111111", "repeats 1 different character(s)"),
    ],
)
def test_a_weak_token_or_password_is_refused_without_repeating_it(monkeypatch, variable, value, complaint):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    message = str(excinfo.value)
    assert variable in message and complaint in message
    assert value not in message


def test_strong_tokens_and_passwords_load_and_empty_means_unset(monkeypatch):
    import secrets

    token, password = secrets.token_urlsafe(32), secrets.token_urlsafe(12)
    monkeypatch.setenv("WATTLINE_OPENADR_TOKEN", token)
    monkeypatch.setenv("WATTLINE_BI_PASSWORD", password)
    monkeypatch.setenv("WATTLINE_CARBON_API_TOKEN", "")
    settings = load_settings()
    assert settings.openadr_token.get_secret_value() == token and settings.bi_password.get_secret_value() == password
    assert settings.carbon_api_token is None
