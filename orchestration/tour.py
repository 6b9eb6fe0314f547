"""Screenshots of a running Dagster UI in headless Chromium: the README's tour, and the
browser test's evidence that the UI shows the Wattline code location.

Chromium comes from the system (Debian's `chromium` package); Playwright only drives
it, and never downloads a browser of its own.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# The groups the code location defines; the catalog lists each.
WATTLINE_GROUPS = ("registry", "telemetry", "weather", "grid", "staging", "intermediate", "marts", "forecasting", "demand_response")

# Without the background-networking flags Chromium keeps calling Google's hosts, which a
# closed network refuses, many at a time; the sandbox needs user namespaces root lacks.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class TourError(RuntimeError):
    """The browser could not be started or a page did not show what it should."""


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    # Text that appears once the page has loaded its data.
    shows: str
    caption: str
    # A tab to open on the page before the shot.
    tab: str | None = None


PAGES = [
    Page("lineage", "/asset-groups", "telemetry",
         "Global lineage: every Wattline asset group, from the sources (registry, telemetry, "
         "weather, grid) through staging and intermediate to the marts, the forecast and demand response."),
    Page("catalog", "/assets", "intermediate", "The asset catalog: each table with its description, group, latest materialisation and checks."),
    Page("marts", "/locations/wattline/asset-groups/marts", "fct_load_hourly",
         "The marts group: each mart's latest event, "
         "asset checks, partitions and automation.", tab="List"),
    Page("telemetry", "/assets/raw/meter_readings", "meter_readings",
         "An hourly partitioned source: freshness, "
         "automation condition and the latest load's metadata."),
    Page("automation", "/automation", "wattline_automation",
         "Automation: the declarative automation sensor, the "
         "source and settlement schedules, the DR and alert sensors."),
    Page("runs", "/runs", "Runs", "Runs: the demo's, then those the schedules, the automation and the DR sensor launch on their own."),
]


def find_chromium() -> str | None:
    """The system Chromium: `WATTLINE_CHROMIUM`, else `chromium` on PATH."""
    from orchestration.settings import get_settings

    configured = get_settings().chromium
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def browser_page() -> Iterator:
    """A Playwright page in the system's headless Chromium."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise TourError("Playwright is not installed: pip install -e '.[test]'") from None
    chromium = find_chromium()
    if chromium is None:
        raise TourError("no Chromium found: install Debian's `chromium` package or set WATTLINE_CHROMIUM")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        except PlaywrightError as exc:
            raise TourError(f"Chromium ({chromium}) did not start: {exc}") from None
        try:
            yield browser.new_page(viewport={"width": 1440, "height": 900})
        finally:
            browser.close()


def open_page(page, url: str, spec: Page, timeout_s: float = 60) -> None:
    """Go to `spec` (and its tab) and wait until it shows its text and its data requests settle."""
    from playwright.sync_api import Error as PlaywrightError

    timeout_ms = timeout_s * 1000
    try:
        page.goto(f"{url.rstrip('/')}{spec.path}", wait_until="domcontentloaded", timeout=timeout_ms)
        page.wait_for_load_state("networkidle", timeout=timeout_ms)
        # A new browser profile first gets Dagster's newsletter invitation over the page.
        skip = page.get_by_role("button", name="Skip")
        if skip.count() and skip.first.is_visible():
            skip.first.click()
        if spec.tab:
            page.get_by_role("tab", name=spec.tab).first.click(timeout=timeout_ms)
        page.get_by_text(spec.shows, exact=False).first.wait_for(timeout=timeout_ms)
        page.wait_for_load_state("networkidle", timeout=timeout_ms)
        # Rows fill in their status after the list appears.
        page.get_by_text("Loading", exact=False).first.wait_for(state="hidden", timeout=timeout_ms)
    except PlaywrightError as exc:
        raise TourError(f"{spec.path} did not show {spec.shows!r} within {timeout_s:.0f} s ({str(exc).splitlines()[0]})") from None


def take_screenshots(url: str, out_dir: Path, pages: list[Page] = PAGES, timeout_s: float = 60, compact: bool = False) -> list[Path]:
    """Open each page of the UI at `url` and save a PNG of it in `out_dir` (with
    `compact`, as a 64-colour palette PNG: a fifth of the size, for the repository);
    returns the files. Raises TourError naming the page that did not load."""
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = []
    with browser_page() as page:
        for spec in pages:
            open_page(page, url, spec, timeout_s)
            path = out_dir / f"{spec.name}.png"
            page.screenshot(path=str(path))
            if compact:
                _to_palette(path)
            saved.append(path)
    return saved


def _to_palette(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(colors=64)
    palette.save(path, format="PNG", optimize=True)
