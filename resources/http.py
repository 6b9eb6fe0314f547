"""HTTP sessions for the outside feeds: retries, backoff, timeouts, clear errors.

Retries are urllib3's `Retry` mounted on a `requests.Session`: exponential backoff
with jitter, `Retry-After` honoured on 429/503. A failure that survives the retries
raises `SourceError` naming the URL, the status and what was expected, so the run
fails before anything of its partition is written.

urllib3 retries only up to the response headers. A body read whole (JSON) that breaks
off or goes silent afterwards is fetched again here, under the same policy. A streamed
body cannot be resumed: its first rows are already consumed, so `StreamedBody` turns
the break into a `BodyBrokenError` naming the URL; the consumer discards what it read
and may fetch the whole body again under the same policy (`retry_policy`).
"""

from __future__ import annotations

import email.utils
import http.client
import re
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests
import urllib3
from dagster import ConfigurableResource
from pydantic import Field
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

RETRY_STATUSES = (429, 500, 502, 503, 504)

# Headers that carry a credential (Electricity Maps' `auth-token`): like Authorization,
# never forwarded on a redirect to another host.
CREDENTIAL_HEADERS = ("auth-token", "x-api-key", "api-key")
# Query parameters whose value is masked wherever a URL is shown (errors, logs, rows).
_SECRET_PARAM = re.compile(r"token|key|secret|password|passwd|pwd|auth|signature|sig|credential", re.IGNORECASE)


def safe_url(url: str) -> str:
    """`url` as errors, logs and tables may show it: no `user:password@`, and the value
    of any query parameter named like a credential (token, key, secret, …) masked."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "<unreadable URL>"
    if any(_SECRET_PARAM.search(key) for key, _ in query):
        masked = [(key, "***" if _SECRET_PARAM.search(key) else value) for key, value in query]
        parts = parts._replace(query=urlencode(masked, safe="/:,*", quote_via=quote))
    return urlunsplit(parts._replace(netloc=netloc))


class CredentialSession(requests.Session):
    """A session that drops the credential headers (CREDENTIAL_HEADERS) on a redirect to
    another host, as requests itself does only for Authorization."""

    def rebuild_auth(self, prepared_request, response):
        if self.should_strip_auth(response.request.url, prepared_request.url):
            for name in CREDENTIAL_HEADERS:
                prepared_request.headers.pop(name, None)
        super().rebuild_auth(prepared_request, response)


class SourceError(RuntimeError):
    """A source did not deliver what we asked for, after retries."""


class BodyBrokenError(SourceError):
    """A 200 body broke off (cut, or silent past the read timeout) after the headers."""

    def __init__(self, message: str, url: str):
        super().__init__(message)
        self.url = url


def retry_policy(retries: int, backoff_factor: float, methods: frozenset[str] = frozenset({"GET", "HEAD"})) -> Retry:
    """The one retry policy of every outbound request: exponential backoff with jitter,
    Retry-After honoured, transient statuses and connect/read errors retried (only for
    `methods`: a POST only where it is idempotent)."""
    return Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_factor,
        backoff_jitter=backoff_factor / 2,
        backoff_max=60,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=methods,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def build_session(
    *, retries: int, backoff_factor: float, user_agent: str = "wattline", methods: frozenset[str] = frozenset({"GET", "HEAD"}),
) -> requests.Session:
    """A session that retries `methods` under the one policy (POST only where it is idempotent)."""
    session = CredentialSession()
    adapter = HTTPAdapter(max_retries=retry_policy(retries, backoff_factor, methods))
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
    """GET `url`; anything but a 200 after retries raises `SourceError` saying what was
    expected. Unless `stream`, the body is read here, where a break can still be retried."""
    body_retry: Retry = session.get_adapter(url).max_retries
    while True:
        try:
            response = session.get(url, params=params, timeout=timeout, stream=True)
        except requests.RequestException as exc:
            raise SourceError(f"GET {safe_url(url)} failed after retries: {scrubbed_error(exc, url)}; expected {expected}") from None
        if response.status_code != 200:
            body = response.raw.read(300, decode_content=True).decode("utf-8", "replace")
            response.close()
            raise SourceError(
                f"GET {safe_url(response.url)} answered {response.status_code} after retries; "
                f"expected 200 with {expected}. Body starts: {body!r}"
            )
        if stream:
            return response
        try:
            response.content  # noqa: B018 - reads and keeps the body
            return response
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as exc:
            # requests wraps urllib3's ProtocolError / ReadTimeoutError; Retry counts those as read errors.
            cause = exc.args[0] if exc.args else None
            if not isinstance(cause, urllib3.exceptions.HTTPError):
                cause = urllib3.exceptions.ProtocolError(str(exc))
            response.close()
            try:
                body_retry = body_retry.increment(method="GET", url=response.url, error=cause)
            except urllib3.exceptions.MaxRetryError:
                raise SourceError(f"GET {safe_url(response.url)}: the body broke off, after retries ({exc}); expected {expected}") from exc
            body_retry.sleep()
        except requests.RequestException as exc:  # e.g. a body that does not decode: not transient
            response.close()
            raise SourceError(f"GET {safe_url(response.url)}: the body could not be read ({exc}); expected {expected}") from exc


def scrubbed_error(exc: Exception, url: str) -> str:
    """A transport error's text without the URL's credentials (urllib3 repeats the URL,
    or its path and query, in connection errors)."""
    text = str(exc)
    parts = urlsplit(url)
    hidden = [parts.password or ""] + [value for key, value in parse_qsl(parts.query) if _SECRET_PARAM.search(key)]
    for secret in filter(None, hidden):
        text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
    return text


def answered_at(response: requests.Response) -> datetime | None:
    """When the origin answered, by its `Date` header (RFC 9110 §6.6.1), never later than
    our own clock; None when it sent none or one that does not parse. What a feed holds
    "as of" is the origin's time, not the time we happen to look at it."""
    try:
        stamp = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError):
        return None
    if stamp.tzinfo is None:
        return None
    return min(stamp.astimezone(UTC), datetime.now(UTC))


# What a body read can fail with once the headers are in: a cut or a silence.
TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


class StreamedBody:
    """A streamed 200 body for a consumer that reads it to the end (a COPY). A transport
    failure mid-body raises `BodyBrokenError` naming the URL and how far the body got, and
    stays in `failure`: consumers that wrap exceptions (psycopg2 reports a failed read()
    in COPY as a database error) can be overruled by the code that opened the body."""

    def __init__(self, response: requests.Response, expected: str):
        response.raw.decode_content = True
        self._raw = response.raw
        self.url = safe_url(response.url)
        self.expected = expected
        self.received = 0
        self.failure: BodyBrokenError | None = None
        self.answered_at = answered_at(response)

    def read(self, size: int | None = -1) -> bytes:
        return self._guarded(self._raw.read, None if size is None or size < 0 else size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._guarded(self._raw.readline, -1 if size is None else size)

    def _guarded(self, read, size) -> bytes:
        try:
            data = read(size)
        except TRANSPORT_ERRORS as exc:
            self.failure = BodyBrokenError(
                f"GET {self.url}: the body broke off after {self.received:,} bytes ({exc}); "
                f"expected {self.expected} to the end",
                url=self.url,
            )
            raise self.failure from exc
        self.received += len(data)
        return data


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

    def retry_policy(self) -> Retry:
        """The policy the session retries with, for re-fetching a body that broke off."""
        return retry_policy(self.max_retries, self.backoff_factor)

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
                    f"GET {safe_url(response.url)} answered a body that is not JSON "
                    f"(starts {response.text[:120]!r}); expected {expected}"
                ) from None
