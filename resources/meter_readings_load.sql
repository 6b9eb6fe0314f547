-- Loading one window of meter readings: stage, classify every row against the rules,
-- quarantine the rule breakers, replace the window with the rest. All in one transaction.

-- name: stage
create temp table _stage (
    line                bigserial,
    ts                  timestamptz,
    meter_id            text,
    facility_id         text,
    interval_s          integer,
    energy_kwh          double precision,
    active_power_kw     double precision,
    reactive_power_kvar double precision,
    voltage_v           double precision,
    current_a           double precision,
    power_factor        double precision,
    frequency_hz        double precision,
    energy_source       text
) on commit drop;

-- name: stage_lines
-- Slow path, for a delivery with values that do not parse: one text field per line.
create temp table _stage_lines (line bigserial, body text) on commit drop;

-- name: clear_window
delete from raw.meter_readings where ts >= %(start)s and ts < %(end)s;

-- name: clear_rejected
delete from raw.meter_readings_rejected where hour >= %(start)s and hour < %(end)s;

-- name: classify_and_load
with base as (
    select
        s.*,
        case
            when s.ts is null or coalesce(s.meter_id, '') = '' or coalesce(s.facility_id, '') = ''
                 or s.interval_s is null or s.energy_kwh is null then 'missing_value'
            when s.energy_kwh in ('NaN', 'Infinity', '-Infinity')
                 or s.active_power_kw in ('NaN', 'Infinity', '-Infinity')
                 or s.power_factor in ('NaN', 'Infinity', '-Infinity')
                 or s.voltage_v in ('NaN', 'Infinity', '-Infinity') then 'not_a_number'
            when s.energy_kwh < 0 then 'negative_energy'
            when s.power_factor < 0 or s.power_factor > 1 then 'power_factor_out_of_range'
            when s.voltage_v < %(voltage_min_v)s or s.voltage_v > %(voltage_max_v)s then 'voltage_out_of_band'
            when s.ts > now() + make_interval(secs => %(future_tolerance_s)s) then 'future_timestamp'
            when s.ts < %(start)s or s.ts >= %(end)s then 'outside_window'
            when m.meter_id is null then 'unknown_meter'
        end as base_reason
    from _stage as s
    left join raw.meters as m on m.meter_id = s.meter_id
),

-- One sort does two jobs: it finds repeated keys (the first good row wins) and puts
-- the rows in index order, so the (meter_id, ts) btree is written sequentially.
ranked as (
    select
        *,
        row_number() over (partition by meter_id, ts order by base_reason nulls first, line) as key_rank
    from base
),

classified as (
    select *, coalesce(base_reason, case when key_rank > 1 then 'duplicate_key' end) as reason
    from ranked
),

rejected as (
    insert into raw.meter_readings_rejected (
        window_start, window_end, hour, reason, line, ts, meter_id, facility_id, interval_s,
        energy_kwh, active_power_kw, reactive_power_kvar, voltage_v, current_a, power_factor,
        frequency_hz, energy_source, row_hash, occurrence)
    select
        %(start)s, %(end)s,
        case when ts >= %(start)s and ts < %(end)s then date_trunc('hour', ts) else %(start)s end,
        reason, line, ts::text, meter_id, facility_id, interval_s::text, energy_kwh::text,
        active_power_kw::text, reactive_power_kvar::text, voltage_v::text, current_a::text,
        power_factor::text, frequency_hz::text, energy_source, row_hash,
        row_number() over (partition by row_hash order by line)
    from (
        select *, md5(concat_ws(',', ts, meter_id, facility_id, interval_s, energy_kwh, active_power_kw,
                                reactive_power_kvar, voltage_v, current_a, power_factor, frequency_hz,
                                energy_source)) as row_hash
        from classified
        where reason is not null
    ) as bad
    on conflict (row_hash, occurrence) do nothing
    returning reason
),

loaded as (
    insert into raw.meter_readings (ts, meter_id, facility_id, interval_s, energy_kwh, active_power_kw,
                                    reactive_power_kvar, voltage_v, current_a, power_factor,
                                    frequency_hz, energy_source)
    select ts, meter_id, facility_id, interval_s, energy_kwh, active_power_kw, reactive_power_kvar,
           voltage_v, current_a, power_factor, frequency_hz, energy_source
    from classified
    where reason is null
    returning 1
)

-- `rejected` runs whether or not it is read; counts come from `classified` so a row
-- already quarantined by an earlier, overlapping load still counts for this one.
select 'loaded' as outcome, count(*) as n from loaded
union all
select reason, count(*) from classified where reason is not null group by reason;

-- name: lines_checked
create temp table _lines_checked on commit drop as
select
    line,
    body,
    fields,
    case
        when body is null or cardinality(fields) <> %(width)s then 'malformed_row'
        when not ({value_checks}) then 'malformed_value'
    end as reason
from (select line, body, string_to_array(body, ',') as fields from _stage_lines) as split;

-- name: lines_rejected
insert into raw.meter_readings_rejected (
    window_start, window_end, hour, reason, line, ts, meter_id, facility_id, interval_s, energy_kwh,
    active_power_kw, reactive_power_kvar, voltage_v, current_a, power_factor, frequency_hz,
    energy_source, row_hash, occurrence)
select
    %(start)s, %(end)s, %(start)s, reason, line, {raw_fields}, md5(coalesce(body, '')),
    row_number() over (partition by md5(coalesce(body, '')) order by line)
from _lines_checked
where reason is not null
on conflict (row_hash, occurrence) do nothing;

-- name: lines_staged
insert into _stage (line, ts, meter_id, facility_id, interval_s, energy_kwh, active_power_kw,
                    reactive_power_kvar, voltage_v, current_a, power_factor, frequency_hz, energy_source)
select line, {typed_fields}
from _lines_checked
where reason is null;

-- name: lines_malformed
select reason, count(*) from _lines_checked where reason is not null group by reason;
