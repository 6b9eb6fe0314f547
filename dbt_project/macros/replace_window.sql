{#-
    Incremental strategy `replace_window`: delete the target's rows in the processed
    window, then insert the new ones, in the model's transaction.

    Unlike delete+insert or merge (which key on unique_key), a key that disappeared
    from the source disappears from the mart too, so rebuilding a window always
    gives the same rows as a full refresh. The window is the partition window
    (min_ts/max_ts vars) when set, else the span of the new rows.
-#}
{% macro get_incremental_replace_window_sql(arg_dict) %}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source = arg_dict["temp_relation"] -%}
    {%- set column = adapter.quote(config.require("window_column")) -%}
    {%- set columns = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}

    {%- if partition_window_is_set() %}
    delete from {{ target }}
    where {{ column }} >= '{{ var("min_ts") }}'::timestamptz
      and {{ column }} < '{{ var("max_ts") }}'::timestamptz;
    {%- else %}
    delete from {{ target }}
    where {{ column }} >= (select min({{ column }}) from {{ source }})
      and {{ column }} <= (select max({{ column }}) from {{ source }});
    {%- endif %}

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }};
{% endmacro %}

{#- The indexes of a model rebuilt by window: its key (unique), and the window column
    alone, which the strategy's delete and the dashboards' time ranges use. -#}
{% macro window_indexes(key_columns, window_column) %}
    {{ return([{'columns': key_columns, 'unique': True}, {'columns': [window_column]}]) }}
{% endmacro %}
