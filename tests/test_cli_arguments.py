"""Every `wattline` argument is checked before anything runs: what a command cannot read
is a usage error (exit code 2) naming the option, never a traceback or a guess
(issue 18, defect 12)."""

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from orchestration import cli_params
from orchestration.cli import main

SOON = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=2)
ALIGNED = SOON.replace(minute=SOON.minute - SOON.minute % 15)
DR_EVENT = ["simulate", "dr-event", "--facilities", "FAC-0001"]


@pytest.mark.parametrize(
    ("arguments", "option"),
    [
        (["alerts", "list", "--limit", "-5"], "--limit"),
        (["alerts", "list", "--limit", "0"], "--limit"),
        (["alerts", "list", "--limit", "many"], "--limit"),
        (["alerts", "ack", "-3"], "ALERT_ID"),
        (["alerts", "ack", "0"], "ALERT_ID"),
        (["alerts", "ack", "99999999999999999999"], "ALERT_ID"),
        (["alerts", "ack", "7", "--by", "  "], "--by"),
        ([*DR_EVENT, "--start", "+30x", "--reduction-pct", "10"], "--start"),
        ([*DR_EVENT, "--start", "+-30m", "--reduction-pct", "10"], "--start"),
        ([*DR_EVENT, "--start", "+0m", "--reduction-pct", "10"], "--start"),
        ([*DR_EVENT, "--start", "+30", "--reduction-pct", "10"], "--start"),
        ([*DR_EVENT, "--start", "+200h", "--reduction-pct", "10"], "--start"),
        ([*DR_EVENT, "--start", "tomorrow", "--reduction-pct", "10"], "--start"),
        ([*DR_EVENT, "--start", ALIGNED.replace(tzinfo=None).isoformat(), "--reduction-pct", "10"], "--start"),
        ([*DR_EVENT, "--start", "2020-07-01T17:00:00Z", "--reduction-pct", "10"], "--start"),
        ([*DR_EVENT, "--start", (ALIGNED + timedelta(minutes=5)).isoformat(), "--reduction-pct", "10"], "--start"),
        ([*DR_EVENT, "--duration", "0", "--reduction-pct", "10"], "--duration"),
        ([*DR_EVENT, "--duration", "10", "--reduction-pct", "10"], "--duration"),
        ([*DR_EVENT, "--duration", "50", "--reduction-pct", "10"], "--duration"),
        ([*DR_EVENT, "--duration", "25h", "--reduction-pct", "10"], "--duration"),
        ([*DR_EVENT, "--duration", "-60", "--reduction-pct", "10"], "--duration"),
        ([*DR_EVENT, "--duration", "an hour", "--reduction-pct", "10"], "--duration"),
        ([*DR_EVENT, "--reduction-pct", "0"], "--reduction-pct"),
        ([*DR_EVENT, "--reduction-pct", "150"], "--reduction-pct"),
        ([*DR_EVENT, "--reduction-pct", "nan"], "--reduction-pct"),
        ([*DR_EVENT, "--reduction-kw", "-5"], "--reduction-kw"),
        ([*DR_EVENT, "--reduction-kw", "inf"], "--reduction-kw"),
        ([*DR_EVENT], "--reduction-pct and --reduction-kw"),
        ([*DR_EVENT, "--reduction-pct", "10", "--reduction-kw", "5"], "--reduction-pct and --reduction-kw"),
        (["simulate", "dr-event", "--facilities", "", "--reduction-pct", "10"], "--facilities"),
        (["simulate", "dr-event", "--facilities", "FAC-1,,FAC-2", "--reduction-pct", "10"], "--facilities"),
        (["simulate", "dr-event", "--facilities", "FAC-1,FAC-1", "--reduction-pct", "10"], "--facilities"),
        (["simulate", "dr-event", "--facilities", "FAC 1", "--reduction-pct", "10"], "--facilities"),
        ([*DR_EVENT, "--reduction-pct", "10", "--event-id", "evt 1"], "--event-id"),
        ([*DR_EVENT, "--reduction-pct", "10", "--url", "ftp://127.0.0.1:8787"], "--url"),
        ([*DR_EVENT, "--reduction-pct", "10", "--url", "127.0.0.1:8787"], "--url"),
        (["backfill", "--start", "last week", "--end", "2026-05-02"], "--start"),
        (["backfill", "--start", "2026-05-01", "--end", "2026-02-30"], "--end"),
        (["tour", "--url", "localhost:3000"], "--url"),
        (["demo", "--days", "0"], "--days"),
        (["demo", "--facilities", "-1"], "--facilities"),
    ],
)
def test_an_argument_a_command_cannot_read_is_a_usage_error_naming_it(arguments, option):
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Usage:" in result.output and option in result.output, result.output
    assert "Traceback" not in result.output


def test_event_start_and_duration_read_what_an_operator_writes():
    now = datetime.now(UTC)
    relative = cli_params.EVENT_START.convert("+30m", None, None)
    assert relative.minute % 15 == 0 and timedelta(minutes=30) <= relative - now < timedelta(minutes=46)
    assert cli_params.EVENT_START.convert("+1.5h", None, None) - now >= timedelta(minutes=90)
    assert cli_params.EVENT_START.convert(ALIGNED.isoformat().replace("+00:00", "Z"), None, None) == ALIGNED
    assert cli_params.EVENT_DURATION.convert("90", None, None) == timedelta(minutes=90)
    assert cli_params.EVENT_DURATION.convert("45m", None, None) == timedelta(minutes=45)
    assert cli_params.EVENT_DURATION.convert("1.5h", None, None) == timedelta(minutes=90)
    assert cli_params.ID_LIST.convert(" FAC-0001, FAC-0002 ", None, None) == ["FAC-0001", "FAC-0002"]
    assert cli_params.MOMENT.convert("2026-05-01", None, None) == datetime(2026, 5, 1, tzinfo=UTC)
