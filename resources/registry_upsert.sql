-- name: facilities
insert into raw.facilities as f (facility_id, name, archetype, timezone, latitude, longitude,
                                 contract_demand_kw, price_zone, grid_zone)
select facility_id, name, archetype, timezone, latitude, longitude, contract_demand_kw, price_zone, grid_zone
from jsonb_to_recordset(%(rows)s::jsonb) as r(
    facility_id text, name text, archetype text, timezone text, latitude float8, longitude float8,
    contract_demand_kw float8, price_zone text, grid_zone text)
on conflict (facility_id) do update set
    name = excluded.name, archetype = excluded.archetype, timezone = excluded.timezone,
    latitude = excluded.latitude, longitude = excluded.longitude,
    contract_demand_kw = excluded.contract_demand_kw, price_zone = excluded.price_zone,
    grid_zone = excluded.grid_zone, active = true, last_seen_at = now(), _loaded_at = now();

-- name: facilities_retired
update raw.facilities set active = false, _loaded_at = now()
where active and facility_id <> all(%(ids)s);

-- name: facilities_counts
select count(*) filter (where active), count(*) filter (where not active) from raw.facilities;

-- name: meters
insert into raw.meters as m (meter_id, facility_id, energy_source, end_use, interval_s)
select meter_id, facility_id, energy_source, end_use, interval_s
from jsonb_to_recordset(%(rows)s::jsonb) as r(
    meter_id text, facility_id text, energy_source text, end_use text, interval_s integer)
on conflict (meter_id) do update set
    facility_id = excluded.facility_id, energy_source = excluded.energy_source,
    end_use = excluded.end_use, interval_s = excluded.interval_s,
    active = true, last_seen_at = now(), _loaded_at = now();

-- name: meters_retired
update raw.meters set active = false, _loaded_at = now()
where active and meter_id <> all(%(ids)s);

-- name: meters_counts
select count(*) filter (where active), count(*) filter (where not active) from raw.meters;
