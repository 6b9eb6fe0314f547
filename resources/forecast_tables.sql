-- The load forecast's tables (assets/forecasting.py writes them; BI reads the marts).
-- The comments are the column descriptions BI tools and the Dagster UI show. Sections
-- are named statements (resources/sql_files.py).

-- name: create_tables
create schema if not exists marts;
create schema if not exists ops;

create table if not exists marts.fct_load_forecast (
    facility_id text not null,
    interval_start timestamptz not null,
    interval_end timestamptz not null,
    yhat_kw double precision not null,
    yhat_lower_80_kw double precision not null,
    yhat_upper_80_kw double precision not null,
    yhat_lower_95_kw double precision not null,
    yhat_upper_95_kw double precision not null,
    temperature_c double precision not null,
    temperature_source text not null,
    model_version text not null,
    trained_through timestamptz not null,
    created_at timestamptz not null,
    primary key (facility_id, interval_start)
);
comment on table marts.fct_load_forecast is
    'Each facility''s load for the next 48 hours from its latest forecast run, hour by hour, with 80 % and 95 % intervals. A run replaces the facility''s rows; a facility the run could not forecast has none (its reason is in fct_load_forecast_backtest).';
comment on column marts.fct_load_forecast.facility_id is 'Facility forecast.';
comment on column marts.fct_load_forecast.interval_start is 'Start of the forecast hour (UTC timestamp).';
comment on column marts.fct_load_forecast.interval_end is 'End of the forecast hour (UTC timestamp, exclusive).';
comment on column marts.fct_load_forecast.yhat_kw is 'Expected average facility load over the hour, kW (all end uses, whatever supplies them).';
comment on column marts.fct_load_forecast.yhat_lower_80_kw is 'Lower bound of the 80 % prediction interval, kW: yhat plus the 10th percentile of the backtest''s errors on its held-out week (split conformal); never below 0.';
comment on column marts.fct_load_forecast.yhat_upper_80_kw is 'Upper bound of the 80 % prediction interval, kW: yhat plus the 90th percentile of the backtest''s errors on its held-out week (split conformal).';
comment on column marts.fct_load_forecast.yhat_lower_95_kw is 'Lower bound of the 95 % prediction interval, kW: yhat plus the 2.5th percentile of the backtest''s errors on its held-out week (split conformal); never below 0.';
comment on column marts.fct_load_forecast.yhat_upper_95_kw is 'Upper bound of the 95 % prediction interval, kW: yhat plus the 97.5th percentile of the backtest''s errors on its held-out week (split conformal).';
comment on column marts.fct_load_forecast.temperature_c is 'Air temperature the forecast assumed for the hour, °C.';
comment on column marts.fct_load_forecast.temperature_source is 'Where that temperature came from: forecast (the weather forecast), observed (the model ran behind real time) or recent_mean (no weather for the hour: the mean of the same hour over the last week).';
comment on column marts.fct_load_forecast.model_version is 'Prophet version, features and a hash of the model settings that made the forecast.';
comment on column marts.fct_load_forecast.trained_through is 'The model learnt from load before this instant and forecasts from it (UTC timestamp).';
comment on column marts.fct_load_forecast.created_at is 'When the forecast run wrote the row (UTC timestamp).';

create table if not exists marts.fct_load_forecast_backtest (
    facility_id text not null,
    trained_through timestamptz not null,
    status text not null check (status in ('forecast', 'skipped', 'failed')),
    reason text,
    history_days double precision,
    daily_seasonality text,
    test_hours integer,
    scored_hours integer,
    mae_kw double precision,
    rmse_kw double precision,
    cv_rmse_pct double precision,
    nmbe_pct double precision,
    naive_mae_kw double precision,
    naive_rmse_kw double precision,
    naive_cv_rmse_pct double precision,
    naive_nmbe_pct double precision,
    mae_improvement_pct double precision,
    coverage_80_pct double precision,
    coverage_95_pct double precision,
    within_ashrae_limits boolean,
    future_temperature_filled_hours integer,
    warm_started boolean,
    fit_seconds double precision,
    model_version text not null,
    created_at timestamptz not null,
    primary key (facility_id, trained_through)
);
comment on table marts.fct_load_forecast_backtest is
    'One row per facility and forecast run: how the model did on the last 7 days held out (hourly), against the seasonal-naive baseline (the same hour a week earlier), or why the facility was not forecast. A rerun for the same trained_through replaces its rows.';
comment on column marts.fct_load_forecast_backtest.facility_id is 'Facility the run modelled.';
comment on column marts.fct_load_forecast_backtest.trained_through is 'The run''s forecast origin (UTC timestamp); the backtest held out the 7 days before it.';
comment on column marts.fct_load_forecast_backtest.status is 'forecast (fct_load_forecast has its hours), skipped (too little usable history; see reason) or failed (the model raised; see reason).';
comment on column marts.fct_load_forecast_backtest.reason is 'Why a facility was skipped or failed, in words; empty when forecast.';
comment on column marts.fct_load_forecast_backtest.history_days is 'Days of complete, weather-matched hourly load the model could learn from (hours / 24).';
comment on column marts.fct_load_forecast_backtest.daily_seasonality is 'single (one daily shape) or weekday/weekend (separate daily shapes, chosen when the two average profiles differ by more than 10 % of the mean load).';
comment on column marts.fct_load_forecast_backtest.test_hours is 'Held-out hours with complete load, a count.';
comment on column marts.fct_load_forecast_backtest.scored_hours is 'Held-out hours both the model and the baseline were scored on (those with load a week earlier), a count.';
comment on column marts.fct_load_forecast_backtest.mae_kw is 'Model mean absolute error over the scored hours, kW.';
comment on column marts.fct_load_forecast_backtest.rmse_kw is 'Model root-mean-square error over the scored hours, kW.';
comment on column marts.fct_load_forecast_backtest.cv_rmse_pct is 'Model CV(RMSE): RMSE over the mean actual load, % (ASHRAE Guideline 14 limit for hourly models: 30 %).';
comment on column marts.fct_load_forecast_backtest.nmbe_pct is 'Model normalised mean bias error: sum of (actual - forecast) over n times the mean actual load, % (positive = under-forecast; ASHRAE Guideline 14 limit: ±10 %).';
comment on column marts.fct_load_forecast_backtest.naive_mae_kw is 'Seasonal-naive baseline (same hour a week earlier) mean absolute error, kW.';
comment on column marts.fct_load_forecast_backtest.naive_rmse_kw is 'Seasonal-naive baseline root-mean-square error, kW.';
comment on column marts.fct_load_forecast_backtest.naive_cv_rmse_pct is 'Seasonal-naive baseline CV(RMSE), %.';
comment on column marts.fct_load_forecast_backtest.naive_nmbe_pct is 'Seasonal-naive baseline NMBE, %.';
comment on column marts.fct_load_forecast_backtest.mae_improvement_pct is 'How much lower the model''s MAE is than the baseline''s, % of the baseline''s (negative = worse than the baseline).';
comment on column marts.fct_load_forecast_backtest.coverage_80_pct is 'Share of held-out hours whose actual load fell inside the 80 % interval, %: each held-out day''s interval calibrated on the other days'' errors, as the forecast''s are on the whole week.';
comment on column marts.fct_load_forecast_backtest.coverage_95_pct is 'Share of held-out hours whose actual load fell inside the 95 % interval, % (calibrated as for coverage_80_pct).';
comment on column marts.fct_load_forecast_backtest.within_ashrae_limits is 'True when CV(RMSE) ≤ 30 % and |NMBE| ≤ 10 % (ASHRAE Guideline 14, hourly).';
comment on column marts.fct_load_forecast_backtest.future_temperature_filled_hours is 'Forecast hours without weather that used the last week''s mean temperature for the hour, a count.';
comment on column marts.fct_load_forecast_backtest.warm_started is 'True when the fit started from the parameters of the facility''s previous run.';
comment on column marts.fct_load_forecast_backtest.fit_seconds is 'Wall time to backtest, fit, forecast and plot the facility, seconds.';
comment on column marts.fct_load_forecast_backtest.model_version is 'Prophet version, features and a hash of the model settings.';
comment on column marts.fct_load_forecast_backtest.created_at is 'When the run wrote the row (UTC timestamp).';

-- Where each facility's last fit ended, so the next run's optimiser starts there.
create table if not exists ops.forecast_model_params (
    facility_id text primary key,
    model_version text not null,
    trained_through timestamptz not null,
    params jsonb not null,
    updated_at timestamptz not null default now()
);

-- name: latest_complete_hour
-- The end of the last hour the marts hold that has ended by now.
select max(hour_end)
from marts.fct_load_hourly
where hour_end <= now();

-- name: facilities
select facility_id, timezone
from marts.dim_facility
where is_active
  and (%(facility_ids)s::text[] is null or facility_id = any(%(facility_ids)s::text[]))
order by facility_id;

-- name: inputs
select facility_id, hour_start, avg_kw, data_completeness, temperature_c, shortwave_radiation_w_m2, is_forecast
from intermediate.int_facility_load_weather_hourly
where facility_id = any(%(facility_ids)s)
  and hour_start >= %(start)s
  and hour_start < %(end)s
order by facility_id, hour_start;

-- name: model_params
select facility_id, params
from ops.forecast_model_params
where model_version = %(model_version)s
  and facility_id = any(%(facility_ids)s)
  and trained_through <= %(as_of)s;

-- name: replace_forecast
delete from marts.fct_load_forecast where facility_id = any(%(facility_ids)s);
insert into marts.fct_load_forecast
select * from jsonb_populate_recordset(null::marts.fct_load_forecast, %(rows)s::jsonb);

-- name: replace_backtest
delete from marts.fct_load_forecast_backtest
where facility_id = any(%(facility_ids)s) and trained_through = %(as_of)s;
insert into marts.fct_load_forecast_backtest
select * from jsonb_populate_recordset(null::marts.fct_load_forecast_backtest, %(rows)s::jsonb);

-- name: store_params
insert into ops.forecast_model_params (facility_id, model_version, trained_through, params)
select facility_id, model_version, trained_through, params
from jsonb_to_recordset(%(rows)s::jsonb)
    as fitted (facility_id text, model_version text, trained_through timestamptz, params jsonb)
on conflict (facility_id) do update
set model_version = excluded.model_version,
    trained_through = excluded.trained_through,
    params = excluded.params,
    updated_at = now();
