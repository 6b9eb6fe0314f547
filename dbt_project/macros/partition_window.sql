{#- The time window a Dagster partition run processes, from the min_ts/max_ts vars. -#}

{% macro partition_window_is_set() -%}
    {{ return(var('min_ts', none) is not none and var('max_ts', none) is not none) }}
{%- endmacro %}

{#- `where` clause restricting an incremental model's input to the partition window. -#}
{% macro partition_window_filter(column) -%}
    {%- if is_incremental() and partition_window_is_set() -%}
    where {{ column }} >= '{{ var("min_ts") }}'::timestamptz
      and {{ column }} < '{{ var("max_ts") }}'::timestamptz
    {%- endif -%}
{%- endmacro %}
