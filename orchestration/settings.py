"""Wattline settings: environment variables (`WATTLINE_*`) and an optional `.env`.

Every process (CLI, Dagster webserver, daemon, run workers, dbt) reads the same
variables, so one `.env` or one exported environment configures the whole platform.
Validation errors name the variable and what is wrong with it.
"""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "WATTLINE_"


SOURCE_URLS = ("telemetry_api_url", "weather_api_url", "price_api_url", "carbon_api_url")


class SettingsError(ValueError):
    """Raised when the environment does not describe a usable configuration."""


def _check_postgres_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(
            f"expected a URL like postgresql://user:password@host:5432/database, "
            f"got scheme {parts.scheme!r}"
        )
    if not parts.path.strip("/"):
        raise ValueError("the URL names no database (postgresql://…/<database>)")
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError("the URL names no host (use @host:port or ?host=/socket/dir)")
    try:
        parts.port  # noqa: B018 - raises on a non-numeric port
    except ValueError as exc:
        raise ValueError(f"bad port: {exc}") from None
    return value


def _check_http_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http(s):// URL, got {value!r}")
    return value.rstrip("/")


def check_webhook_secret(value: str) -> None:
    """A Standard Webhooks secret: `whsec_` and base64 of 24 to 64 random bytes. The
    message never repeats the value: it is a secret."""
    import base64
    import binascii

    if not value.startswith("whsec_"):
        raise ValueError("expected whsec_ followed by base64 (the Standard Webhooks format)")
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the part after whsec_ is not valid base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"the key is {len(key)} bytes; use 24 to 64 random bytes")


MIN_TOKEN_CHARS = 32  # a bearer token: 32 random characters carry 128 bits or more
MIN_TOKEN_DISTINCT = 8
MIN_PASSWORD_CHARS = 16  # the BI role's password guards a network-reachable login
MIN_PASSWORD_DISTINCT = 5


def check_strength(value: str, *, what: str, min_chars: int, min_distinct: int) -> None:
    """A credential someone could not guess in a few tries: long enough, of enough
    different characters, without spaces (a header or URL would cut it). The message
    never repeats the value: it is a secret."""
    if len(value) < min_chars:
        raise ValueError(f"the {what} is {len(value)} characters; use at least {min_chars} random ones, e.g. "
                         "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"the {what} holds spaces or control characters")
    distinct = len(set(value))
    if distinct < min_distinct:
        raise ValueError(f"the {what} repeats {distinct} different character(s); use at least {min_distinct} "
                         "(random characters, not a pattern)")


class WattlineSettings(BaseSettings):
    """What an operator can configure. Defaults run everything on this machine."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(
        default=Path(".wattline"),
        description="State directory: embedded PostgreSQL data, DAGSTER_HOME, logs.",
    )
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL 14+ for the warehouse; unset = embedded server under home.",
        repr=False,
    )
    dagster_database_url: str | None = Field(
        default=None,
        description="Database for Dagster's run/event storage; unset = `dagster` on the same server.",
        repr=False,
    )
    telemetry_api_url: str | None = None
    weather_api_url: str | None = None
    price_api_url: str | None = None
    price_feed_currency: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 currency of the ComEd-format feed's ¢/kWh when the source implies one "
        "(ComEd: USD); unset = each price zone's currency (dbt seed price_zone_currencies).",
    )
    carbon_api_url: str | None = None
    carbon_api_token: SecretStr | None = Field(
        default=None, description="Electricity Maps `auth-token`; sent only to WATTLINE_CARBON_API_URL."
    )

    bi_password: SecretStr | None = Field(
        default=None,
        description=(
            "Password of the read-only `wattline_bi` role, set at each bootstrap; unset = none "
            "is set (the embedded server's Unix socket needs none; one set before is kept)."
        ),
    )

    dbt_target_path: str = Field(
        default="target",
        description=(
            "dbt's target directory, relative to dbt_project/: a process that parses the "
            "project for another database beside a running platform (a benchmark) keeps its "
            "manifest apart."
        ),
    )

    ui_host: str = "127.0.0.1"
    ui_port: int = Field(default=3000, ge=1, le=65535)
    webhook_port: int = Field(default=8787, ge=1, le=65535)
    chromium: str | None = Field(
        default=None,
        description="The Chromium binary `wattline tour` and the browser test drive; unset = `chromium` on PATH.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description=(
            "Standard Webhooks secret (`whsec_` + base64) the utility signs DR notifications "
            "with; unset = the utility endpoint refuses every request (503)."
        ),
    )
    openadr_token: SecretStr | None = Field(
        default=None,
        description="Bearer token the OpenADR 3 VTN presents; unset = the OpenADR endpoint refuses every request (503).",
    )

    bms_url: str | None = Field(
        default=None,
        description=(
            "Building-management endpoint DR plans are dispatched to (JSON POST, one per facility); "
            "unset = the simulator's under `wattline up` when it serves the sources, else plans are not dispatched."
        ),
    )

    notify_webhook_url: str | None = Field(
        default=None, description="Generic webhook alerts are POSTed to, signed per Standard Webhooks with WATTLINE_NOTIFY_WEBHOOK_SECRET."
    )
    notify_webhook_secret: SecretStr | None = Field(
        default=None, description="Standard Webhooks secret (`whsec_` + base64) the alert webhook is signed with."
    )
    notify_slack_url: str | None = Field(default=None, description="Slack-compatible incoming webhook for alerts.")
    notify_smtp_url: SecretStr | None = Field(
        default=None,
        description="SMTP server for alert e-mail: smtp://[user:password@]host[:port] (STARTTLS when offered) or smtps://… (TLS).",
    )
    notify_email_from: str = Field(default="wattline@localhost", description="Sender of alert e-mail.")
    notify_email_to: str | None = Field(default=None, description="Comma-separated recipients of alert e-mail.")
    notify_max_attempts: int = Field(default=6, ge=1, le=50, description="Delivery attempts per alert and channel before giving up.")

    retention_raw_days: int = Field(
        default=90, ge=1, description="Days of raw.meter_readings day partitions kept (dropped only once their hourly rollups exist)."
    )
    retention_marts_days: int = Field(
        default=730, ge=1, description="Days of hourly and 15-minute marts kept."
    )

    history_start: date = Field(
        default=date(2025, 1, 1), description="First day of the telemetry partitions."
    )

    sim_seed: int = 42
    sim_facilities: int = Field(default=10, ge=1, le=5000)
    sim_interval_s: int = Field(default=60, ge=1, le=3600)
    sim_port: int = Field(default=8788, ge=0, le=65535)

    http_timeout_s: float = Field(
        default=60.0, gt=0, le=600, description="Longest silence the feed clients wait for between body chunks, s."
    )
    http_retries: int = Field(
        default=5, ge=0, le=20, description="Retries of a failed feed request (connect, read, 429 and 5xx), with backoff."
    )

    forecast_workers: int = Field(
        default=0, ge=0, le=256, description="Processes the load forecast fits facilities in; 0 = every core available."
    )

    @field_validator("database_url", "dagster_database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        return _check_postgres_url(value)

    @field_validator("webhook_secret", "notify_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_webhook_secret(value.get_secret_value())
        return value

    @field_validator("openadr_token")
    @classmethod
    def _bearer_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_strength(value.get_secret_value(), what="token", min_chars=MIN_TOKEN_CHARS, min_distinct=MIN_TOKEN_DISTINCT)
        return value

    @field_validator("bi_password")
    @classmethod
    def _bi_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_strength(value.get_secret_value(), what="password", min_chars=MIN_PASSWORD_CHARS, min_distinct=MIN_PASSWORD_DISTINCT)
        return value

    @field_validator("bi_password", "webhook_secret", "openadr_token", "carbon_api_token", "notify_webhook_secret", "notify_smtp_url", mode="before")
    @classmethod
    def _empty_secret(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("telemetry_api_url", "weather_api_url", "price_api_url", "carbon_api_url", "bms_url", "notify_webhook_url", "notify_slack_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return _check_http_url(value)

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _channels_complete(self) -> WattlineSettings:
        if self.notify_webhook_url and self.notify_webhook_secret is None:
            raise ValueError("WATTLINE_NOTIFY_WEBHOOK_URL is set without WATTLINE_NOTIFY_WEBHOOK_SECRET: alert webhooks are always signed")
        if self.notify_smtp_url is not None and not self.notify_email_to:
            raise ValueError("WATTLINE_NOTIFY_SMTP_URL is set without WATTLINE_NOTIFY_EMAIL_TO: nobody to send alerts to")
        return self

    @property
    def notification_channels(self) -> list[str]:
        """The alert channels configured: webhook, slack, email."""
        return [name for name, on in (
            ("webhook", self.notify_webhook_url), ("slack", self.notify_slack_url), ("email", self.notify_smtp_url),
        ) if on]

    @property
    def unset_sources(self) -> list[str]:
        """The source URL variables not configured; the simulator serves those feeds."""
        return [f"{ENV_PREFIX}{name.upper()}" for name in SOURCE_URLS if getattr(self, name) is None]

    @property
    def uses_simulator(self) -> bool:
        """True when some source is not configured, so `wattline` serves the simulator."""
        return bool(self.unset_sources)

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"


def load_settings(**overrides: object) -> WattlineSettings:
    """Read and validate settings, turning pydantic's report into one that names variables."""
    try:
        return WattlineSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            message = error["msg"].removeprefix("Value error, ")
            # A check across settings names its variables in its message.
            lines.append(f"{ENV_PREFIX}{field.upper()}: {message}" if error["loc"] else message)
        raise SettingsError("invalid Wattline settings:\n  " + "\n  ".join(lines)) from None


@functools.cache
def get_settings() -> WattlineSettings:
    """The process-wide settings, read once, and pinned for the rest of the process.

    The first read takes `.env` from the working directory the command started in and
    resolves a relative WATTLINE_HOME against it; both are then written into this
    process's environment (what was already exported wins over `.env`). A later read, after
    dbt moved the working directory into dbt_project/ or after a cache clear, and every
    child process (webserver, daemon, run workers) therefore see the same settings: before,
    a reread from dbt_project/ started a second, empty embedded server there.
    """
    settings = load_settings()
    pin_environment(settings)
    return settings


def pin_environment(settings: WattlineSettings) -> None:
    """Export `.env`'s WATTLINE_* values (where unset) and the absolute WATTLINE_HOME."""
    import os

    from dotenv import dotenv_values

    env_file = Path(WattlineSettings.model_config["env_file"])
    if env_file.is_file():
        for name, value in dotenv_values(env_file).items():
            if name.upper().startswith(ENV_PREFIX) and value is not None:
                os.environ.setdefault(name.upper(), value)
    os.environ[f"{ENV_PREFIX}HOME"] = str(settings.home)
