"""The generated instance's Dagster storage (orchestration/dagster_storage.py): events are
stored over a few pooled connections, not one connection each (a DR burst's wait), and
connections the server dropped (a PostgreSQL restart) cost no failed call."""

import sqlalchemy as sa
from dagster import AssetMaterialization, DagsterRunStatus, asset, materialize

from orchestration.dagster_storage import PooledPostgresStorage
from tests.conftest import generated_instance


@asset
def pooled_probe() -> None:
    """A trivial asset: what is measured is the storage around it."""


def _sessions(engine: sa.Engine, name: str) -> int:
    with engine.connect() as conn:
        conn.execute(sa.text("select pg_stat_clear_snapshot()"))
        return conn.scalar(sa.text("select sessions from pg_stat_database where datname = :n"), {"n": name})


def _terminate(engine: sa.Engine, name: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.text(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = :n and pid <> pg_backend_pid()"
        ), {"n": name})


def test_events_share_pooled_connections_and_outlive_a_server_that_dropped_them(pg_server, tmp_path):
    admin = sa.create_engine(pg_server.sqlalchemy_url, isolation_level="AUTOCOMMIT")
    try:
        with generated_instance(pg_server, tmp_path, "dagster_pool") as instance:
            assert instance.get_ref().storage_data.class_name == PooledPostgresStorage.__name__
            name = instance.event_log_storage._engine.url.database
            before = _sessions(admin, name)
            for i in range(200):
                instance.report_runless_asset_event(AssetMaterialization("pooled_probe", metadata={"i": i}))
            opened = _sessions(admin, name) - before
            # Dagster's default storage opens one connection (or more) per event stored.
            assert opened <= 10, f"200 events opened {opened} connections"
            assert instance.get_latest_materialization_event(pooled_probe.key).asset_materialization.metadata["i"].value == 199

            # As after a PostgreSQL restart: every connection the pool holds is gone.
            assert _terminate(admin, name) >= 1
            result = materialize([pooled_probe], instance=instance)
            assert result.success
            assert instance.get_run_by_id(result.run_id).status == DagsterRunStatus.SUCCESS
    finally:
        admin.dispose()
