"""What a warm run worker has loaded before a run is forked from it
(orchestration/run_launcher.py): the code location, its repository resolved, and the
libraries the DR runs import lazily (the code location keeps them lazy so that it loads
in seconds; a worker forked from here starts with them in memory). Imported once, by
the forkserver that the run launcher starts; never by the code location itself."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates  # noqa: E402,F401 - the plan plot's axes
import matplotlib.figure  # noqa: E402,F401 - the plan plots
import pandas  # noqa: E402,F401 - the customer baseline

import assets.dr_baseline  # noqa: E402,F401
import assets.dr_planner  # noqa: E402,F401
import assets.dr_targets  # noqa: E402,F401
from orchestration.definitions import defs  # noqa: E402

# Resolving the Definitions builds the asset graph (dbt's models included): once here,
# not once per run.
defs.get_repository_def().get_job("dr_plan_job")
defs.get_repository_def().get_job("dr_dispatch_job")
