{#- Models land in the schema they name (staging, intermediate, marts): BI tools and
    the `wattline_bi` grants depend on those exact names, not on `public_marts`. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
