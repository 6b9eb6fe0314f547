{#-
    Gaps and islands over quarter hours: consecutive 15-minute intervals within a
    partition share this value (interval_start minus 15 minutes × the interval's row
    number), so grouping by it merges each unbroken run of intervals into one row.
    `partition_by` is SQL, e.g. 'meter_id' or 'meter_id, max_kw'.
-#}
{% macro quarter_hour_island(partition_by) -%}
    interval_start - interval '15 minutes' * row_number() over (
            partition by {{ partition_by }} order by interval_start
        )
{%- endmacro %}
