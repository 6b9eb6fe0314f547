"""The PostgreSQL connection in use, in the forms each consumer wants.

One libpq URL (what `wattline db url` prints, what psql and BI tools take) is turned
into a SQLAlchemy URL, dbt's profile variables and Dagster's storage URL, so every
part of the platform talks to the same server, including over a Unix socket.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import (
    parse_qs,
    parse_qsl,
    quote,
    unquote,
    urlencode,
    urlsplit,
    urlunsplit,
)

# Query parameters libpq reads a credential from (`?password=` works as well as `user:password@`).
SECRET_PARAMS = frozenset({"password", "sslpassword"})

# libpq waits forever by default: a host that accepts TCP and never answers hung every
# command for minutes. A connection gets 10 s to be established, and a peer that vanishes
# mid-query is noticed by TCP keepalives within about a minute (no statement timeout: a
# dbt build or a day's COPY legitimately runs for minutes). A URL that sets one keeps it.
CONNECTION_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database, addressed by a libpq URL."""

    url: str
    embedded: bool = False

    @property
    def name(self) -> str:
        return urlsplit(self.url).path.lstrip("/")

    def with_name(self, name: str) -> Database:
        """The same server and credentials, another database."""
        parts = urlsplit(self.url)
        return replace(self, url=urlunsplit(parts._replace(path=f"/{name}")))

    def with_user(self, user: str, password: str | None = None) -> Database:
        """The same server and database, as another role (e.g. `wattline_bi`)."""
        parts = urlsplit(self.url)
        credentials = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        host = parts.netloc.rpartition("@")[2]
        return replace(self, url=urlunsplit(parts._replace(netloc=f"{credentials}@{host}")))

    @property
    def sqlalchemy_url(self) -> str:
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; we ship psycopg2.
        parts = urlsplit(self.url)
        given = {key for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
        defaults = urlencode({key: value for key, value in CONNECTION_DEFAULTS.items() if key not in given})
        query = "&".join(part for part in (parts.query, defaults) if part)
        return urlunsplit(parts._replace(scheme="postgresql+psycopg2", query=query))

    @property
    def has_password(self) -> bool:
        """True when the URL carries a password, in its user part or as `?password=`."""
        return bool(self.libpq_params()["password"]) or any(
            key in SECRET_PARAMS and value for key, value in parse_qsl(urlsplit(self.url).query, keep_blank_values=True)
        )

    @property
    def redacted_url(self) -> str:
        """The URL with any password masked (`user:***@`, `?password=***`), for logs,
        errors and metadata."""
        parts = urlsplit(self.url)
        netloc = parts.netloc
        if parts.password:
            userinfo, _, host = netloc.rpartition("@")
            netloc = f"{userinfo.partition(':')[0]}:***@{host}"
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(key in SECRET_PARAMS for key, _ in query):
            masked = urlencode([(key, "***" if key in SECRET_PARAMS else value) for key, value in query], safe="/*", quote_via=quote)
            parts = parts._replace(query=masked)
        return urlunsplit(parts._replace(netloc=netloc))

    def libpq_params(self) -> dict[str, str]:
        """host/port/user/password/dbname/sslmode as libpq understands them."""
        parts = urlsplit(self.url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        host = query.pop("host", None) or (parts.hostname or "localhost")
        port = query.pop("port", None) or (str(parts.port) if parts.port else "5432")
        return {
            "host": unquote(host),
            "port": port,
            "user": unquote(parts.username or "postgres"),
            "password": unquote(parts.password or "") or query.pop("password", ""),
            "dbname": self.name,
            "sslmode": query.pop("sslmode", "prefer"),
        }

    def dbt_env(self) -> dict[str, str]:
        """Environment for `dbt_project/profiles.yml`."""
        params = self.libpq_params()
        return {
            "WATTLINE_PG_HOST": params["host"],
            "WATTLINE_PG_PORT": params["port"],
            "WATTLINE_PG_USER": params["user"],
            "WATTLINE_PG_PASSWORD": params["password"],
            "WATTLINE_PG_DBNAME": params["dbname"],
            "WATTLINE_PG_SSLMODE": params["sslmode"],
        }
