"""The production instance config in deploy/ loads as Dagster loads it, against a real
PostgreSQL, with the run queue, retries and monitoring it promises."""

import os
import subprocess
import sys
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"

PROBE = """
from dagster import DagsterInstance
instance = DagsterInstance.get()
concurrency = instance.get_concurrency_config()
queue = concurrency.run_queue_config
print(type(instance.run_storage).__name__, type(instance.run_coordinator).__name__,
      queue.max_concurrent_runs, instance.run_coordinator.dequeue_interval_seconds,
      instance.run_retries_enabled, instance.run_retries_max_retries,
      instance.run_monitoring_enabled, len(instance.get_runs()),
      concurrency.pool_config.default_pool_limit, concurrency.pool_config.pool_granularity.value)
"""


def test_deploy_dagster_yaml_is_a_valid_instance_on_postgres(pg_server, tmp_path):
    from tests.conftest import create_database, drop_database

    storage = create_database(pg_server, "dagster_deploy")
    try:
        # In its own process: DAGSTER_HOME and the storage URL are read at instance load.
        env = {**os.environ, "DAGSTER_HOME": str(DEPLOY), "WATTLINE_DAGSTER_STORAGE_URL": storage.sqlalchemy_url}
        out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr[-3000:]
        assert out.stdout.split() == ["PostgresRunStorage", "QueuedRunCoordinator", "8", "1", "True", "2", "True", "0", "1", "run"]
    finally:
        drop_database(pg_server, storage)
