"""HTTP sessions for the outside feeds: retries, backoff, timeouts, clear errors.

Retries are urllib3's `Retry` mounted on a `requests.Session`: exponential backoff
with jitter, `Retry-After` honoured on 429/503. A failure that survives the retries
raises `SourceError` naming the URL, the status and what was expected, so the run
fails before anything of its partition is written.
"""

from __future__ import annotations

from typing import ClassVar

import requests
from dagster import ConfigurableResource
from pydantic import Field
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

RETRY_STATUSES = (429, 500, 502, 503, 504)


class SourceError(RuntimeError):
    """A source did not deliver what we asked for, after retries."""


def build_session(*, retries: int, backoff_factor: float, user_agent: str = "wattline") -> requests.Session:
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_factor,
        backoff_jitter=backoff_factor / 2,
        backoff_max=60,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


def get_checked(
    session: requests.Session,
    url: str,
    *,
    params: dict | None,
    timeout: tuple[float, float],
    expected: str,
    stream: bool = False,
) -> requests.Response:
    """GET `url`; anything but a 200 after retries raises `SourceError` saying what was expected."""
    try:
        response = session.get(url, params=params, timeout=timeout, stream=stream)
    except requests.RequestException as exc:
        raise SourceError(f"GET {url} failed after retries: {exc}; expected {expected}") from exc
    if response.status_code != 200:
        body = response.text[:300] if not stream else response.raw.read(300, decode_content=True)
        response.close()
        raise SourceError(
            f"GET {response.url} answered {response.status_code} after retries; "
            f"expected 200 with {expected}. Body starts: {body!r}"
        )
    return response


class SourceApiResource(ConfigurableResource):
    """What every outside feed's client shares: where it is, how long to wait, how
    often to retry. Subclasses name the setting their URL falls back to."""

    base_url: str | None = Field(
        default=None,
        description="API root; unset = the feed's WATTLINE_*_API_URL (the simulator under `wattline up`).",
    )
    connect_timeout_s: float = Field(default=5.0, description="Longest wait for a connection, s.")
    read_timeout_s: float = Field(default=60.0, description="Longest silence between body chunks, s.")
    max_retries: int = Field(default=5, description="Retries of a failed request (connect, read, 429/5xx).")
    backoff_factor: float = Field(default=0.5, description="Exponential backoff base, s (with jitter).")

    url_setting: ClassVar[str] = ""
    feed: ClassVar[str] = ""

    def resolved_base_url(self) -> str:
        from orchestration.settings import ENV_PREFIX, get_settings

        url = self.base_url or getattr(get_settings(), self.url_setting)
        if not url:
            raise SourceError(
                f"no {self.feed} configured: set {ENV_PREFIX}{self.url_setting.upper()}, or start the "
                "platform with `wattline up`, which serves the simulator for every source not set"
            )
        return url.rstrip("/")

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout_s, self.read_timeout_s)

    def session(self) -> requests.Session:
        return build_session(retries=self.max_retries, backoff_factor=self.backoff_factor)

    def get_json(
        self, path: str, params: dict | None, expected: str, *, headers: dict | None = None, base_url: str | None = None
    ):
        """GET a JSON body; a non-200 after retries, a cut body or a body that is not JSON
        raises `SourceError` naming the URL and what was expected."""
        url = f"{base_url or self.resolved_base_url()}{path}"
        with self.session() as session:
            if headers:
                session.headers.update(headers)
            response = get_checked(session, url, params=params, timeout=self.timeout, expected=expected)
            try:
                return response.json()
            except ValueError:
                raise SourceError(
                    f"GET {response.url} answered a body that is not JSON "
                    f"(starts {response.text[:120]!r}); expected {expected}"
                ) from None
