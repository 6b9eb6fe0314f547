-- Which version of the warehouse DDL (raw_schema.sql, dr_tables.sql) the warehouse is
-- at: a digest of its text. resources/postgres.ensure_warehouse_schema applies the DDL
-- only when the digest differs, so the runs that call it at each step read one row
-- rather than take the tables' locks.

-- name: tracked
select to_regclass('ops.warehouse_schema') is not null;

-- name: applied
select digest from ops.warehouse_schema;

-- name: record
create table if not exists ops.warehouse_schema (
    singleton  boolean primary key default true check (singleton),
    digest     text not null,
    applied_at timestamptz not null default now()
);
insert into ops.warehouse_schema (digest) values (%(digest)s)
on conflict (singleton) do update set digest = excluded.digest, applied_at = now();
