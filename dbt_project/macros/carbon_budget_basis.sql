{#- The emissions basis carbon budgets are measured on: var carbon_budget_basis, checked. -#}
{% macro carbon_budget_basis() %}
    {%- set basis = var('carbon_budget_basis') -%}
    {%- if basis not in ['location', 'market'] -%}
        {{ exceptions.raise_compiler_error("var carbon_budget_basis must be 'location' or 'market', not '" ~ basis ~ "'") }}
    {%- endif -%}
    {{ return(basis) }}
{% endmacro %}
