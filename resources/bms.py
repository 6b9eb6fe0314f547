"""The building-management system DR plans are dispatched to: one JSON POST per
facility and event version, retried by urllib3's `Retry` (POST included: each request
carries an `Idempotency-Key`, the dispatch id, so a retry the BMS already applied
changes nothing)."""

import requests
from dagster import ConfigurableResource
from pydantic import Field

from resources.http import build_session, safe_url, scrubbed_error


class DispatchError(RuntimeError):
    """The BMS did not accept a dispatch, after retries."""


class BmsResource(ConfigurableResource):
    """Where DR dispatches go and how hard to try."""

    url: str | None = Field(
        default=None,
        description="Dispatch endpoint; unset = WATTLINE_BMS_URL (the simulator's under `wattline up`).",
    )
    connect_timeout_s: float = Field(default=5.0, description="Longest wait for a connection, s.")
    read_timeout_s: float = Field(default=15.0, description="Longest wait for the BMS's answer, s.")
    max_retries: int = Field(default=4, description="Retries of a failed POST (connect, read, 429/5xx).")
    backoff_factor: float = Field(default=0.5, description="Exponential backoff base, s (with jitter).")

    def resolved_url(self) -> str | None:
        from orchestration.settings import get_settings

        return self.url or get_settings().bms_url

    def dispatch(self, payload: dict) -> dict:
        """POST one facility's schedule; returns the BMS's JSON answer (or {}), raises
        DispatchError naming the URL and the answer when it refuses after retries."""
        url = self.resolved_url()
        if not url:
            raise DispatchError("no BMS configured: set WATTLINE_BMS_URL")
        with build_session(retries=self.max_retries, backoff_factor=self.backoff_factor, methods=frozenset({"POST"})) as session:
            try:
                response = session.post(
                    url, json=payload, timeout=(self.connect_timeout_s, self.read_timeout_s),
                    headers={"Idempotency-Key": payload["dispatch_id"]},
                )
            except requests.RequestException as exc:
                raise DispatchError(f"POST {safe_url(url)} failed after retries: {scrubbed_error(exc, url)}") from None
            if response.status_code not in (200, 201, 202, 204):
                raise DispatchError(f"POST {safe_url(url)} answered {response.status_code} after retries: {response.text[:300]!r}")
            try:
                return response.json() if response.content else {}
            except ValueError:
                return {}
