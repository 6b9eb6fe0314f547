{#- An anomaly's severity from one measure: 'high' from `high`, 'medium' from `medium`,
    else 'low'. With below=true the measure is worse the lower it is (a power factor). -#}
{% macro severity(measure, medium, high, below=false) -%}
    {%- set worse = '<' if below else '>=' -%}
    case
            when {{ measure }} {{ worse }} {{ high }} then 'high'
            when {{ measure }} {{ worse }} {{ medium }} then 'medium'
            else 'low'
        end
{%- endmacro %}
