-- Retention (orchestration/retention.py). Sections are named statements
-- (resources/sql_files.py).

-- name: raw_day_partitions
-- The day partitions of raw.meter_readings, with the UTC day each holds.
select child.relname as partition, to_date(right(child.relname, 8), 'YYYYMMDD') as day
from pg_inherits
join pg_class as parent on parent.oid = pg_inherits.inhparent
join pg_class as child on child.oid = pg_inherits.inhrelid
join pg_namespace as ns on ns.oid = parent.relnamespace
where ns.nspname = 'raw' and parent.relname = 'meter_readings'
  and child.relname ~ '^meter_readings_[0-9]{8}$'
order by day;

-- name: hours_without_rollups
-- Facility-hours of one day partition whose hourly rollup is missing or was built from
-- fewer readings than the partition holds (the hour was reloaded after the marts ran):
-- dropping the partition then would lose what the marts never saw.
with raw_hours as (
    select facility_id, date_trunc('hour', ts) as hour_start, count(*) as readings
    from {partition}
    group by 1, 2
)
select count(*) as hours, min(raw_hours.hour_start) as first_hour
from raw_hours
left join marts.fct_load_hourly as rollup
    on rollup.facility_id = raw_hours.facility_id and rollup.hour_start = raw_hours.hour_start
where rollup.facility_id is null or rollup.reading_count < raw_hours.readings;

-- name: partition_rows
select count(*) from {partition};

-- name: drop_partition
-- Dropping the partition (and its hour partitions) frees the space at once; no row
-- deletes, no vacuum debt.
drop table {partition};

-- name: table_exists
-- A mart dbt has not built yet has nothing to trim.
select to_regclass(%(table)s) is not null;

-- name: delete_old_marts
-- Hourly (and finer) marts past their retention, per table.
delete from {table} where {column} < %(cutoff)s;
