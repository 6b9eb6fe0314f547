"""Dagster's PostgreSQL storage (runs, events, schedules) with a connection pool.

dagster-postgres opens a fresh connection for every statement (SQLAlchemy's NullPool),
so that idle instances hold none. Wattline stores events in bursts: a DR run over 400
event versions records 800 planned materialisations when the sensor creates it and as
many materialisations when its steps end, each a connection set up and torn down
(10–20 ms on a busy 2-core machine, most of a burst's wait). Here each process keeps a
small pool instead (two idle connections at most, more while threads need them).

A connection is pinged before each use, so after a PostgreSQL restart the first use
finds the pool's dead connections and opens new ones: the daemon and the runs go on as
they do with a fresh connection per statement. The webserver still replaces these
engines with its own (Dagster's `optimize_for_webserver`).
"""

from collections.abc import Mapping
from typing import Any

from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

POOL = {"pool_size": 2, "max_overflow": 8, "pool_pre_ping": True, "pool_recycle": 3600}


class PooledPostgresStorage(DagsterPostgresStorage):
    """DagsterPostgresStorage whose run, event log and schedule storages each keep a
    small pool of the process's connections instead of opening one per statement."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True,
                 inst_data: ConfigurableClassData | None = None, token_provider: Any = None):
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            unpooled = storage._engine
            storage._engine = create_pg_engine(storage.postgres_url, token_provider, isolation_level="AUTOCOMMIT", **POOL)
            unpooled.dispose()

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]) -> "PooledPostgresStorage":
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
