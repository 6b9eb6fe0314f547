-- Raw layer: what sources delivered, as delivered, plus load metadata.
-- Applied idempotently at bootstrap and before loads; dbt reads these as sources.

create schema if not exists raw;
create schema if not exists ops;

create table if not exists raw.meter_readings (
    ts                  timestamptz      not null,
    meter_id            text             not null,
    facility_id         text             not null,
    interval_s          integer          not null,
    energy_kwh          double precision,
    active_power_kw     double precision,
    reactive_power_kvar double precision,
    voltage_v           double precision,
    current_a           double precision,
    power_factor        double precision,
    frequency_hz        double precision,
    energy_source       text,
    _loaded_at          timestamptz      not null default now(),
    -- Also the index that serves per-meter time ranges; it makes a duplicate impossible.
    primary key (meter_id, ts)
) partition by range (ts);

comment on table raw.meter_readings is
    'Meter interval readings as delivered by the head-end API; ts is the interval start (UTC), '
    'energy_kwh the energy over [ts, ts + interval_s). Partitioned by UTC day.';
