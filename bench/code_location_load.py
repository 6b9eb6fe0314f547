"""How long the Wattline code location takes to load, against bare `import dagster`.

Each sample is a fresh interpreter (what the webserver's code server pays at start);
the limit measured in the same run is the cost of importing dagster itself, which no
code location can beat. Prints medians of --repeats samples.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _report import report

REPO = Path(__file__).resolve().parents[1]


def sample(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()

    load = "from orchestration.definitions import defs; defs.resolve_asset_graph()"
    bare = "import dagster"
    sample(load)  # warm the filesystem cache and .pyc files
    loads = [sample(load) for _ in range(args.repeats)]
    bares = [sample(bare) for _ in range(args.repeats)]
    figures = {
        "load_median_s": round(statistics.median(loads), 3),
        "load_max_s": round(max(loads), 3),
        "import_dagster_median_s": round(statistics.median(bares), 3),
    }
    figures["ratio_to_import_dagster"] = round(figures["load_median_s"] / figures["import_dagster_median_s"], 2)

    report(
        [
            ("code location load (median)", f"{figures['load_median_s']:.3f}"),
            ("code location load (max)", f"{figures['load_max_s']:.3f}"),
            ("import dagster, the limit (median)", f"{figures['import_dagster_median_s']:.3f}"),
            ("ratio load / limit", f"{figures['ratio_to_import_dagster']:.2f}"),
        ],
        figures,
        args.json,
        heading=("measure", "seconds"),
    )


if __name__ == "__main__":
    main()
