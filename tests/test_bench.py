"""`make bench`: every benchmark in bench/ runs, each writes its figures with --json, and
one table judges every figure against its goal, failing the make when one is missed."""

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))

import all as make_bench  # noqa: E402  (bench/all.py, what `make bench` runs)

# Modules in bench/ that are helpers of the benchmarks, not benchmarks.
HELPERS = {"all", "_report", "bench_support", "soak_audit", "soak_inject"}


def test_make_bench_runs_every_benchmark_each_writing_json():
    scripts = {path.stem for path in BENCH.glob("*.py")} - HELPERS
    assert scripts == set(make_bench.SIZES), "a benchmark make bench does not run, or one it runs that is gone"
    shared = _options(BENCH / "bench_support.py")  # fleet_arguments: --facilities, --days, --interval-s
    for name in scripts:
        source = (BENCH / f"{name}.py").read_text()
        options = _options(BENCH / f"{name}.py") | (shared if "fleet_arguments(" in source else set())
        assert "--json" in options, f"bench/{name}.py has no --json"
        assert {a for a in make_bench.SIZES[name] if a.startswith("--")} <= options, f"make bench passes bench/{name}.py an option it lacks"
    # Each benchmark has at least one figure judged against a goal.
    assert {goal.bench for goal in make_bench.GOALS} == scripts


def _options(path: Path) -> set[str]:
    """The options a script's argument parser declares."""
    return {node.args[0].value for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "add_argument" and node.args and isinstance(node.args[0], ast.Constant)}


def test_make_bench_target_prepares_the_manifest_and_runs_the_table():
    # Under `make test` the parent make's MAKELEVEL/MAKEFLAGS would make this one print
    # "Entering/Leaving directory" lines; a user types `make bench` at a shell.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    plan = subprocess.run(["make", "-n", "-o", ".venv/.wattline-installed", "bench"], cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout
    assert "bench/all.py" in plan.splitlines()[-1]


def _results(**overrides) -> dict:
    """Figures as the scripts' JSON holds them, every goal met unless overridden."""
    results = {
        "dr_latency": {"ack_p99_ms": 12.0, "healthz_p50_ms": 1.0, "plan_p95_s": 9.0, "in_process_plan_s": 1.2, "stored": 20, "plans": 20,
                       "burst_planned_s": 80.0, "burst_send_s": 2.8},
    }
    for key, value in overrides.items():
        results["dr_latency"][key] = value
    return results


def test_the_table_judges_each_figure_and_a_missed_goal_fails(tmp_path):
    codes, seconds = {"dr_latency": 0}, {"dr_latency": 100.0}
    rows, ok = make_bench.table(_results(), codes, seconds)
    assert ok and [row[-1] for row in rows] == ["met", "met", "met", "met"]

    rows, ok = make_bench.table(_results(plan_p95_s=224.0), codes, seconds)
    assert not ok
    assert [row[1:] for row in rows if row[-1] == "MISSED"] == [["webhook → plan p95", "224.00 s", "in-process plan 1.20 s", "≤ 15 s", "MISSED"]]

    # A version planned twice or not at all is a miss too; a benchmark that failed is one.
    assert not make_bench.table(_results(plans=19), codes, seconds)[1]
    # A burst not fully planned has no figure: that is a miss, not a pass.
    rows, ok = make_bench.table(_results(burst_planned_s=None), codes, seconds)
    assert not ok and [row[-1] for row in rows if "burst" in row[1]] == ["MISSING"]
    rows, ok = make_bench.table({"dr_latency": None}, {"dr_latency": 1}, seconds)
    assert not ok and rows[-1][-1] == "FAILED"


def test_an_open_issues_target_shows_open_while_the_floor_fails_the_run():
    codes, seconds = {"ingest": 0}, {"ingest": 60.0}

    def ingest(ratio: float) -> dict:
        return {"ingest": {"ratio_to_copy_and_key": ratio, "copy_and_key_rows_per_s": 400_000}}

    rows, ok = make_bench.table(ingest(0.81), codes, seconds)
    assert ok and [row[-1] for row in rows] == ["met", "open (issue 23)"]
    rows, ok = make_bench.table(ingest(0.92), codes, seconds)
    assert ok and [row[-1] for row in rows] == ["met", "met"]
    # Below the floor the run fails, whatever the open target says.
    rows, ok = make_bench.table(ingest(0.70), codes, seconds)
    assert not ok and [row[-1] for row in rows] == ["MISSED", "open (issue 23)"]
