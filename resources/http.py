"""HTTP sessions for the outside feeds: retries, backoff, timeouts, clear errors.

Retries are urllib3's `Retry` mounted on a `requests.Session`: exponential backoff
with jitter, `Retry-After` honoured on 429/503. A failure that survives the retries
raises `SourceError` naming the URL, the status and what was expected, so the run
fails before anything of its partition is written.
"""

from __future__ import annotations

import requests
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
