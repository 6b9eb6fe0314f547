-- Read-only access for BI tools: the role wattline_bi reads the marts schema, tables
-- dbt creates or re-creates there later included, and nothing else.
-- Applied at bootstrap (resources/postgres.py ensure_bi_access), in one transaction
-- under the DDL lock; a rerun changes nothing that is already right, so it never
-- rewrites the catalog rows of tables dbt or a load may be swapping concurrently.

-- name: role_state
select
    exists (select from pg_roles where rolname = 'wattline_bi'),
    (select rolsuper or rolcreaterole from pg_roles where rolname = current_user);

-- name: create_role
-- Roles are cluster-wide: the bootstrap of another database may create it meanwhile.
do $$
begin
    create role wattline_bi login;
exception when duplicate_object or unique_violation then
    null;
end $$;

-- name: set_password
-- The value is bound by the driver (and already a SCRAM verifier, not the password).
alter role wattline_bi with login password %(password)s;

-- name: grants
create schema if not exists marts;

do $$
declare
    bi constant oid := 'wattline_bi'::regrole;
    item record;
begin
    -- Tables created later in marts by this role (dbt's runs: it connects as the
    -- bootstrap does) are readable at once, a table dbt drops and re-creates included.
    if not exists (
        select from pg_default_acl d cross join lateral aclexplode(d.defaclacl) a
        where d.defaclrole = (select oid from pg_roles where rolname = current_user)
          and d.defaclnamespace = 'marts'::regnamespace
          and d.defaclobjtype = 'r' and a.grantee = bi and a.privilege_type = 'SELECT'
    ) then
        alter default privileges for role current_user in schema marts
            grant select on tables to wattline_bi;
    end if;

    -- Databases: wattline_bi connects to the warehouse only, and creates nothing there,
    -- temporary tables included. PUBLIC holds CONNECT and TEMP on every database by
    -- default, so taking them from wattline_bi alone would change nothing: PUBLIC loses
    -- them on the warehouse and on every other database this user owns (the embedded
    -- server's `dagster`, `postgres` and `template1`; an external server's Dagster
    -- storage when it is ours). Their owner keeps its own, and superusers need none.
    for item in
        select d.datname, d.datname = current_database() as is_warehouse
        from pg_database d
        where d.datallowconn
          and (d.datname = current_database() or d.datdba = (select oid from pg_roles where rolname = current_user))
          and (
              has_database_privilege('public', d.datname, 'connect')
              or has_database_privilege('public', d.datname, 'temporary')
              or exists (
                  select from aclexplode(d.datacl) a
                  where a.grantee = bi and (d.datname <> current_database() or a.privilege_type <> 'CONNECT')
              )
          )
    loop
        begin
            execute format('revoke connect, temporary on database %I from public', item.datname);
            if item.is_warehouse then
                execute format('revoke create, temporary on database %I from wattline_bi', item.datname);
            else
                execute format('revoke all on database %I from wattline_bi', item.datname);
            end if;
        exception when others then
            raise warning 'wattline_bi: could not revoke PUBLIC''s CONNECT and TEMP on database %: %', item.datname, sqlerrm;
        end;
    end loop;
    if not has_database_privilege('wattline_bi', current_database(), 'connect') then
        execute format('grant connect on database %I to wattline_bi', current_database());
    end if;

    -- Schemas: USAGE on marts, no privilege on any other. PUBLIC loses what it holds on
    -- Wattline's schemas and CREATE on public (PostgreSQL 14 and older grant it; 15+ not).
    if not has_schema_privilege('wattline_bi', 'marts', 'usage') then
        grant usage on schema marts to wattline_bi;
    end if;
    for item in
        select n.nspname, a.grantee, a.privilege_type
        from pg_namespace n cross join lateral aclexplode(n.nspacl) a
        where (a.grantee = bi and not (n.nspname = 'marts' and a.privilege_type = 'USAGE'))
           or (a.grantee = 0 and n.nspname in ('raw', 'ops', 'staging', 'intermediate', 'marts'))
           or (a.grantee = 0 and n.nspname = 'public' and a.privilege_type = 'CREATE')
    loop
        begin
            execute format('revoke %s on schema %I from %s', item.privilege_type, item.nspname,
                           case when item.grantee = 0 then 'public' else 'wattline_bi' end);
        exception when others then
            raise warning 'wattline_bi: could not revoke % on schema % from %: %',
                item.privilege_type, item.nspname,
                case when item.grantee = 0 then 'PUBLIC' else 'wattline_bi' end, sqlerrm;
        end;
    end loop;

    -- Relations: exactly SELECT on each in marts (tables from before the role, or before
    -- the default privileges), nothing on any other.
    for item in
        select c.oid::regclass as relation, n.nspname = 'marts' as in_marts
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        left join lateral (
            select array_agg(a.privilege_type::text order by a.privilege_type) as privileges
            from aclexplode(c.relacl) a
            where a.grantee = bi
        ) held on true
        where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
          and case when n.nspname = 'marts'
                   then c.relkind <> 'S' and held.privileges is distinct from array['SELECT']
                   else held.privileges is not null end
    loop
        begin
            execute format('revoke all on %s from wattline_bi', item.relation);
            if item.in_marts then
                execute format('grant select on %s to wattline_bi', item.relation);
            end if;
        exception when others then
            -- Dropped by a concurrent dbt run, or not ours to grant: say so, go on.
            raise warning 'wattline_bi: could not set privileges on %: %', item.relation, sqlerrm;
        end;
    end loop;
end $$;
