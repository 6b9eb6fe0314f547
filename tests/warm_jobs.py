"""A job for the warm run worker's tests: it holds its run open until told to end
(its release file appears) or the run is cancelled."""

import time
from pathlib import Path

from dagster import Config, in_process_executor, job, op


class Release(Config):
    path: str


@op
def hold_until_released(context, config: Release) -> None:
    context.log.info(f"holding until {config.path} exists")
    while not Path(config.path).exists():
        time.sleep(0.1)


# In the run's process, as every Wattline job runs (orchestration/definitions.py).
@job(executor_def=in_process_executor)
def held_job():
    hold_until_released()
