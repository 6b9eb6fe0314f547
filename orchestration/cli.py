"""The `wattline` command line."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import click

from orchestration import cli_params
from orchestration.database import Database
from orchestration.settings import SettingsError, get_settings


class _Group(click.Group):
    """Turns configuration and bootstrap failures into one-line errors, not tracebacks."""

    def invoke(self, ctx: click.Context):
        from orchestration.runtime import BootstrapError

        try:
            return super().invoke(ctx)
        except (SettingsError, BootstrapError) as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            raise _interrupted() from None
        except BaseException as exc:
            # Dagster's form of the same interrupt, raised inside a run (its run is closed).
            if type(exc).__name__ != "DagsterExecutionInterruptedError":
                raise
            raise _interrupted() from None


def _interrupted() -> click.exceptions.Exit:
    click.echo("interrupted", err=True)
    return click.exceptions.Exit(130)


def _settings():
    try:
        return get_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log what the runtime does.")
def main(verbose: bool) -> None:
    """Wattline: energy data platform on Dagster, dbt and PostgreSQL."""
    from orchestration import interrupts

    # SIGTERM ends a command as Ctrl-C does, and neither leaves a run STARTED.
    interrupts.install()
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Dagster's loggers set their own levels; the terminal shows only what was asked for.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
    # pgserver warns on every import when XDG_RUNTIME_DIR is unset; it falls back fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    if not verbose:
        from dagster import BetaWarning, PreviewWarning

        warnings.filterwarnings("ignore", category=BetaWarning)
        warnings.filterwarnings("ignore", category=PreviewWarning)


@main.command()
@click.option("--facilities", default=None, type=click.IntRange(1, 5000), help="Simulated facilities [default: WATTLINE_SIM_FACILITIES or 10].")
@click.option(
    "--days", default=15, show_default=True, type=click.IntRange(1, 31),
    help="Days of history to backfill; the load forecast needs 14.",
)
@click.option("--no-serve", is_flag=True, help="Exit after the summary instead of serving the UI.")
def demo(facilities: int | None, days: int, no_serve: bool) -> None:
    """Bootstrap, backfill DAYS for N facilities through the asset graph, summarise, serve."""
    from orchestration.demo import run_demo

    settings = _settings()
    if not no_serve:
        from orchestration.serve import check_ports

        # Before the backfill: a taken port found after it would waste the whole demo.
        check_ports(settings, simulator=True)
    sys.exit(run_demo(facilities or settings.sim_facilities, days, serve=not no_serve, settings=settings))


@main.command()
def up() -> None:
    """Serve the platform: Dagster UI + daemon, and the simulator when no source URL is set."""
    from orchestration.runtime import bootstrap, serve_unset_sources
    from orchestration.serve import check_ports, serve_forever
    from resources.dbt import prepare_manifest

    settings = _settings()
    check_ports(settings, simulator=settings.uses_simulator)
    runtime = bootstrap(settings)
    prepare_manifest()
    click.echo(f"warehouse: {runtime.warehouse.redacted_url}")
    sim = None
    if settings.uses_simulator:
        from simulator.config import SimulatorConfig
        from simulator.server import SimulatorServer

        sim = SimulatorServer(
            SimulatorConfig(seed=settings.sim_seed, facilities=settings.sim_facilities, interval_s=settings.sim_interval_s),
            port=settings.sim_port,
        ).start()
        served = serve_unset_sources(settings, sim.url)
        click.echo(f"simulator: {sim.url} (serving {', '.join(served)})")
    try:
        sys.exit(serve_forever(settings))
    finally:
        if sim is not None:
            sim.stop()


@main.command()
def prepare() -> None:
    """Parse the dbt project into its manifest (run once after install or a model change)."""
    from resources.dbt import prepare_manifest

    settings = _settings()
    if settings.database_url:
        # Parse for the configured database: dbt records its name in every relation name.
        os.environ.update(Database(url=settings.database_url).dbt_env())

    click.echo(f"dbt manifest: {prepare_manifest(force=True)}")


@main.command()
@click.option("--url", default=None, type=cli_params.HTTP_URL, help="The Dagster UI to photograph (default: this machine's WATTLINE_UI_PORT on loopback).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("docs/tour"), show_default=True)
def tour(url: str | None, out_dir: Path) -> None:
    """Screenshot the running Dagster UI (catalog, lineage, an asset, automation, runs) in
    headless Chromium: the README's tour. Start `wattline demo` or `wattline up` first."""
    from orchestration.tour import PAGES, TourError, take_screenshots

    settings = _settings()
    url = url or f"http://{settings.ui_host}:{settings.ui_port}"
    try:
        saved = take_screenshots(url, out_dir, compact=True)
    except TourError as exc:
        raise click.ClickException(str(exc)) from None
    for page, path in zip(PAGES, saved, strict=True):
        click.echo(f"{path}  {page.caption}")


@main.command("backfill")
@click.option("--start", required=True, type=cli_params.MOMENT, help="First hour to load, UTC: 2026-05-01 or 2026-05-01T06:00 (rounded down to the hour).")
@click.option("--end", required=True, type=cli_params.MOMENT, help="End of the range, UTC, exclusive (rounded up to the hour; at most the open hour).")
def backfill_command(start, end) -> None:
    """Load and model [START, END) through the asset graph, with progress: telemetry one
    run per day, weather and grid per day, then the marts (runs show in the UI)."""
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from dagster import DagsterInstance

    from orchestration.backfill import backfill
    from orchestration.progress import Steps
    from orchestration.runtime import bootstrap, serve_unset_sources
    from resources.dbt import prepare_manifest

    def hour(value: datetime, up: bool) -> datetime:
        floor = value.replace(minute=0, second=0, microsecond=0)
        return floor + timedelta(hours=1) if up and floor < value else floor

    settings = _settings()
    first, last = hour(start, up=False), hour(end, up=True)
    open_hour_end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    history = datetime.combine(settings.history_start, datetime.min.time(), UTC)
    if last <= first:
        raise click.BadParameter(f"{last:%Y-%m-%d %H:%M} is not after {first:%Y-%m-%d %H:%M}", param_hint="--end")
    if first < history:
        raise click.BadParameter(f"the partitions start at {history:%Y-%m-%d} (WATTLINE_HISTORY_START)", param_hint="--start")
    if last > open_hour_end:
        raise click.BadParameter(f"the range may end at the open hour's end, {open_hour_end:%Y-%m-%d %H:%M} UTC", param_hint="--end")

    runtime = bootstrap(settings)
    prepare_manifest()
    sim = None
    if settings.uses_simulator:
        from simulator.config import SimulatorConfig
        from simulator.server import SimulatorServer

        sim = SimulatorServer(
            SimulatorConfig(seed=settings.sim_seed, facilities=settings.sim_facilities, interval_s=settings.sim_interval_s), port=0,
        ).start()
        click.echo(f"simulator: {sim.url} (serving {', '.join(serve_unset_sources(settings, sim.url))})")
    click.echo(f"warehouse: {runtime.warehouse.redacted_url}")
    log_path = Path(settings.home) / "logs" / f"backfill-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    click.echo(f"run output (dbt, Dagster events): {log_path}")
    try:
        backfill(DagsterInstance.get(), first, last, Steps(total=3), log_path, registry=True)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if sim is not None:
            sim.stop()


@main.group()
def alerts() -> None:
    """The alerts in ops.alerts: list them, acknowledge one."""


def _warehouse_cursor():
    import contextlib

    import sqlalchemy as sa

    from orchestration.runtime import ensure_warehouse

    @contextlib.contextmanager
    def cursor():
        engine = sa.create_engine(ensure_warehouse(_settings()).sqlalchemy_url)
        try:
            with engine.begin() as conn, conn.connection.driver_connection.cursor() as cur:
                yield cur
        finally:
            engine.dispose()

    return cursor()


@alerts.command("list")
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved alerts.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000), help="Most alerts to list.")
def alerts_list(include_resolved: bool, limit: int) -> None:
    """Open alerts (active first, worst first), or every alert with --all."""
    from resources.alert_store import list_alerts

    with _warehouse_cursor() as cur:
        rows = list_alerts(cur, include_resolved, limit)
    if not rows:
        click.echo("no alerts" if include_resolved else "no open alerts")
        return
    click.echo(f"{'id':>6}  {'status':<12} {'kind':<14} {'level':<9} {'raised (UTC)':<17} message")
    for row in rows:
        click.echo(
            f"{row['alert_id']:>6}  {row['status']:<12} {row['kind']:<14} {row['level_name']:<9} "
            f"{row['raised_at']:%Y-%m-%d %H:%M}  {row['message']}"
        )


@alerts.command("ack")
@click.argument("alert_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--by", default=lambda: os.environ.get("USER", "operator"), show_default="$USER", type=cli_params.Text(100), help="Who acknowledges it.")
def alerts_ack(alert_id: int, by: str) -> None:
    """Acknowledge an active alert: someone is on it (it stays open until the condition clears)."""
    from resources.alert_store import acknowledge

    try:
        with _warehouse_cursor() as cur:
            click.echo(acknowledge(cur, alert_id, by))
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def simulate() -> None:
    """Play the outside world against a running platform (the simulated utility)."""


@simulate.command("dr-event")
@click.option("--facilities", required=True, type=cli_params.ID_LIST, help="Comma-separated facility ids, e.g. FAC-0001,FAC-0002.")
@click.option("--start", default="+30m", show_default=True, type=cli_params.EVENT_START,
              help="Event start: ISO 8601 with a time zone, or +Nm / +Nh from now (rounded up to a quarter hour); at most 7 days ahead.")
@click.option("--duration", default="60", show_default=True, type=cli_params.EVENT_DURATION,
              help="Event length in minutes (or 2h): whole quarter hours, 15 minutes to 24 hours.")
@click.option("--reduction-pct", type=cli_params.FiniteFloat(0, 100, min_open=True), help="Reduction asked, % of each facility's baseline, in (0, 100].")
@click.option("--reduction-kw", type=cli_params.FiniteFloat(0, min_open=True), help="Reduction asked across the facilities, kW (instead of a percentage).")
@click.option("--event-id", type=cli_params.IDENTIFIER_PARAM, help="Event id (default: SIM-<time>); the same id with other fields is a revision.")
@click.option("--url", type=cli_params.HTTP_URL, help="Receiver root (default: http://127.0.0.1:$WATTLINE_WEBHOOK_PORT).")
def simulate_dr_event(facilities, start, duration, reduction_pct, reduction_kw, event_id, url) -> None:
    """Send a correctly signed DR event webhook, as a utility would (WATTLINE_WEBHOOK_SECRET signs it)."""
    from datetime import UTC, datetime

    from sensors.dr_events import InvalidEvent, check_window
    from simulator.utility import DrCall, call_event

    if (reduction_pct is None) == (reduction_kw is None):
        raise click.UsageError("give exactly one of --reduction-pct and --reduction-kw")
    try:
        # The receiver's rules for the window (quarter hours, …), before anything is sent.
        check_window(start, start + duration)
    except InvalidEvent as exc:
        raise click.BadParameter(str(exc), param_hint="'--start' / '--duration'") from None
    settings = _settings()
    if settings.webhook_secret is None:
        raise click.ClickException("WATTLINE_WEBHOOK_SECRET is not set: the utility has nothing to sign with")
    now = datetime.now(UTC)
    call = DrCall(
        event_id=event_id or f"SIM-{now:%Y%m%dT%H%M%S}",
        facility_ids=facilities,
        start=start,
        end=start + duration,
        reduction_pct=reduction_pct,
        reduction_kw=reduction_kw,
    )
    receiver = url or f"http://127.0.0.1:{settings.webhook_port}"
    try:
        answer = call_event(receiver, settings.webhook_secret.get_secret_value(), call)
    except OSError as exc:
        raise click.ClickException(f"the receiver at {receiver} did not answer ({exc}); is `wattline up` running?") from None
    click.echo(f"{answer.status_code} {answer.text}")
    if answer.status_code != 202:
        sys.exit(1)


@main.group()
def db() -> None:
    """The PostgreSQL database in use."""


@db.command("url")
def db_url() -> None:
    """Print the warehouse connection URL (starting the embedded server if needed)."""
    from orchestration.runtime import ensure_warehouse

    settings = _settings()
    warehouse = ensure_warehouse(settings)
    source = "embedded server" if warehouse.embedded else "WATTLINE_DATABASE_URL"
    click.echo(f"# {source}", err=True)
    click.echo(warehouse.url)


@db.command("start")
def db_start() -> None:
    """Start the embedded server (or check the configured one) and create the databases."""
    from orchestration.runtime import bootstrap

    runtime = bootstrap(_settings())
    click.echo(f"ready: {runtime.warehouse.redacted_url}")


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded server."""
    from orchestration import embedded_postgres

    settings = _settings()
    if settings.database_url:
        raise click.ClickException("WATTLINE_DATABASE_URL is set: Wattline does not manage that server")
    stopped = embedded_postgres.stop(settings.home)
    click.echo("stopped" if stopped else "not running")


@db.command("status")
def db_status() -> None:
    """Say whether the embedded server is running."""
    from orchestration import embedded_postgres

    settings = _settings()
    if settings.database_url:
        click.echo("external (WATTLINE_DATABASE_URL)")
        return
    url = embedded_postgres.running_url(settings.home)
    click.echo(f"running: {url}" if url else "stopped")


if __name__ == "__main__":
    main()
