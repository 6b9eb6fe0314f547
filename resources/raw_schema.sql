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

create table if not exists raw.meter_readings_rejected (
    window_start        timestamptz      not null,
    window_end          timestamptz      not null,
    -- The hour the row is filed under: its own when its timestamp is in the window,
    -- else the window's first hour. Reloading hours replaces their rejected rows.
    hour                timestamptz      not null,
    reason              text             not null,
    line                bigint,
    ts                  text,
    meter_id            text,
    facility_id         text,
    interval_s          text,
    energy_kwh          text,
    active_power_kw     text,
    reactive_power_kvar text,
    voltage_v           text,
    current_a           text,
    power_factor        text,
    frequency_hz        text,
    energy_source       text,
    row_hash            text             not null,
    occurrence          integer          not null,
    _loaded_at          timestamptz      not null default now(),
    -- The same delivered row, however the hours around it are reloaded, is kept once.
    primary key (row_hash, occurrence)
);
create index if not exists meter_readings_rejected_hour on raw.meter_readings_rejected (hour);

comment on table raw.meter_readings_rejected is
    'Meter readings that broke a rule, with the rule (reason) and the values as delivered; '
    'good rows of the same window load into raw.meter_readings.';

create table if not exists raw.facilities (
    facility_id         text             primary key,
    name                text             not null,
    archetype           text,
    timezone            text             not null,
    latitude            double precision,
    longitude           double precision,
    contract_demand_kw  double precision,
    price_zone          text,
    grid_zone           text,
    active              boolean          not null default true,
    first_seen_at       timestamptz      not null default now(),
    last_seen_at        timestamptz      not null default now(),
    _loaded_at          timestamptz      not null default now()
);

create table if not exists raw.meters (
    meter_id            text             primary key,
    facility_id         text             not null,
    energy_source       text,
    end_use             text,
    interval_s          integer,
    active              boolean          not null default true,
    first_seen_at       timestamptz      not null default now(),
    last_seen_at        timestamptz      not null default now(),
    _loaded_at          timestamptz      not null default now()
);

comment on table raw.meters is
    'Meter registry from the head-end API; a meter the API no longer lists is marked inactive, never deleted.';

create table if not exists raw.weather_hourly (
    facility_id               text             not null,
    time                      timestamptz      not null,
    temperature_c             double precision,
    relative_humidity_pct     double precision,
    cloud_cover_pct           double precision,
    shortwave_radiation_w_m2  double precision,
    wind_speed_kmh            double precision,
    is_forecast               boolean          not null,
    source                    text             not null,
    issued_at                 timestamptz,
    latitude                  double precision,
    longitude                 double precision,
    _loaded_at                timestamptz      not null default now(),
    primary key (facility_id, time)
);

comment on table raw.weather_hourly is
    'Hourly weather at each facility (Open-Meteo format); time is the hour start (UTC). '
    'Rows after the fetch hour are forecasts (is_forecast, issued_at); a later load of '
    'their day replaces them with observations.';

create table if not exists raw.grid_prices (
    zone                text             not null,
    interval_start      timestamptz      not null,
    interval_end        timestamptz      not null,
    resolution          text             not null,
    price_per_mwh       double precision not null,
    currency            text,
    source              text             not null,
    intervals           integer,
    _loaded_at          timestamptz      not null default now(),
    primary key (zone, source, resolution, interval_start)
);

comment on table raw.grid_prices is
    'Grid energy prices per zone in currency per MWh: 5-minute real-time prices '
    '(resolution 5min), their hourly averages (1h, intervals = 5-minute prices averaged) '
    'and day-ahead hourly prices (source day_ahead). currency is the ISO 4217 code the feed '
    'states, empty where it states none (staging then takes the zone''s currency).';

-- Warehouses created when every price was labelled USD: a feed that names no currency
-- now leaves it empty rather than guessing.
alter table raw.grid_prices alter column currency drop not null;

create table if not exists raw.grid_carbon_intensity (
    zone                        text             not null,
    hour_start                  timestamptz      not null,
    factor_type                 text             not null,
    carbon_intensity_g_per_kwh  double precision not null,
    is_estimated                boolean          not null,
    estimation_method           text,
    _loaded_at                  timestamptz      not null default now(),
    primary key (zone, factor_type, hour_start)
);

comment on table raw.grid_carbon_intensity is
    'Hourly grid carbon intensity per zone (Electricity Maps format), gCO2eq/kWh, with the '
    'emission factor type (lifecycle or direct); estimated hours are replaced on reload.';

create table if not exists raw.feed_rejected (
    feed                text             not null,
    window_key          text             not null,
    raw                 jsonb            not null,
    reason              text             not null,
    _loaded_at          timestamptz      not null default now()
);

create index if not exists feed_rejected_window on raw.feed_rejected (feed, window_key);

comment on table raw.feed_rejected is
    'Points a weather, price or carbon response held that could not be read (unknown unit, '
    'missing timestamp, null value), as delivered, with the reason; replaced with each load '
    'of their feed and window.';

-- The demand-response inbox: the webhook receiver commits each accepted event here
-- before it answers 202; the DR sensor reads it by inbox_id.
create table if not exists ops.dr_events (
    inbox_id              bigint           generated always as identity unique,
    event_id              text             not null,
    version               text             not null,
    source                text             not null check (source in ('utility', 'openadr3')),
    facility_ids          text[]           not null check (cardinality(facility_ids) > 0),
    event_start           timestamptz      not null,
    event_end             timestamptz      not null,
    target_reduction_pct  double precision check (target_reduction_pct > 0 and target_reduction_pct <= 100),
    target_reduction_kw   double precision check (target_reduction_kw > 0),
    intervals             jsonb,
    payload               jsonb            not null,
    delivery_id           text,
    status                text             not null default 'received'
        check (status in ('received', 'planned', 'active', 'completed', 'failed', 'cancelled')),
    status_reason         text,
    received_at           timestamptz      not null default now(),
    updated_at            timestamptz      not null default now(),
    primary key (event_id, version),
    check (event_end > event_start)
);

-- Added with the reduction plan: what the plan answers, and when.
alter table ops.dr_events
    add column if not exists target_kwh double precision,
    add column if not exists planned_shed_kwh double precision,
    add column if not exists shortfall_kwh double precision,
    add column if not exists planned_at timestamptz;

comment on table ops.dr_events is
    'Demand-response events as the utility sent them, one row per event id and version (a '
    'redelivery adds nothing; a revision is a new version), with their lifecycle: received, '
    'planned, active, completed or failed (or cancelled).';

-- The one place the rule is written: the version of an event that counts is the last the
-- utility sent. The sensors' statements, the planner and dbt (fct_dr_event_performance)
-- read this view.
create or replace view ops.dr_events_current as
select distinct on (event_id) *
from ops.dr_events
order by event_id, inbox_id desc;

comment on view ops.dr_events_current is
    'Each demand-response event at the version that counts: the last the utility sent.';

create table if not exists ops.dr_dispatches (
    dispatch_id    text         not null,
    event_id       text         not null,
    version        text         not null,
    facility_id    text         not null,
    bms_url        text,
    commands       integer      not null,
    shed_kwh       double precision not null,
    status         text         not null check (status in ('accepted', 'failed', 'not_configured')),
    answer         text,
    attempted_at   timestamptz  not null default now(),
    primary key (dispatch_id, attempted_at)
);

comment on table ops.dr_dispatches is
    'Every attempt to send a facility''s DR plan to its building-management system: accepted, '
    'failed (with the error) or not_configured (no BMS: the operator carries the plan out).';

create table if not exists ops.alerts (
    alert_id         bigint       generated always as identity primary key,
    alert_key        text         not null,
    kind             text         not null,
    subject          text         not null,
    level            integer      not null check (level between 1 and 3),
    level_name       text         not null,
    message          text         not null,
    details          jsonb        not null default '{}'::jsonb,
    status           text         not null default 'active' check (status in ('active', 'acknowledged', 'resolved')),
    raised_at        timestamptz  not null default now(),
    last_seen_at     timestamptz  not null default now(),
    escalated_at     timestamptz,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    resolution       text
);

-- One condition is one alert: at most one open (not resolved) alert per key.
create unique index if not exists alerts_one_open_per_key on ops.alerts (alert_key) where status <> 'resolved';

comment on table ops.alerts is
    'Alerts Wattline raised, one per condition (alert_key) while it lasts: active, then '
    'acknowledged by an operator, then resolved when the condition clears. A rise in level '
    '(e.g. a carbon budget from warning to critical) escalates the open alert and makes it '
    'active again.';

create table if not exists ops.notification_queue (
    delivery_id      bigint       generated always as identity primary key,
    alert_id         bigint       not null references ops.alerts (alert_id),
    alert_event      text         not null,
    channel          text         not null check (channel in ('webhook', 'slack', 'email')),
    status           text         not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
    attempts         integer      not null default 0,
    next_attempt_at  timestamptz  not null default now(),
    created_at       timestamptz  not null default now(),
    unique (alert_id, alert_event, channel)
);

comment on table ops.notification_queue is
    'What alert notifications are owed: one per alert event (raised, escalated to a level) and '
    'channel, pending until delivered or given up after the configured attempts, retried with '
    'exponential backoff by the notifications sensor.';

create table if not exists ops.notifications (
    notification_id  bigint       generated always as identity primary key,
    delivery_id      bigint       not null references ops.notification_queue (delivery_id),
    alert_id         bigint       not null,
    alert_event      text         not null,
    channel          text         not null,
    attempt          integer      not null,
    outcome          text         not null check (outcome in ('delivered', 'failed')),
    detail           text,
    attempted_at     timestamptz  not null default now()
);

comment on table ops.notifications is
    'Every attempt to deliver an alert notification to a channel, with its outcome and the '
    'answer or error (never the channel''s URL or credentials).';

-- raw.valid_input(value, type): can `value` be cast to `type`? Used only on the slow
-- path for malformed deliveries. PostgreSQL 16+ answers natively and fast; older
-- servers trap the cast error per value.
do $$
begin
    if current_setting('server_version_num')::int >= 160000 then
        execute $f$
            create or replace function raw.valid_input(value text, type_name text) returns boolean
            language sql stable as 'select pg_input_is_valid(value, type_name)'
        $f$;
    else
        execute $f$
            create or replace function raw.valid_input(value text, type_name text) returns boolean
            language plpgsql stable as $body$
            begin
                execute format('select %L::%s', value, type_name);
                return true;
            exception when others then
                return false;
            end $body$
        $f$;
    end if;
end $$;
