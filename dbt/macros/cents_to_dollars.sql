{#- Stripe amounts are integers in cents; return dollars with two decimals. -#}
{% macro cents_to_dollars(column_name) -%}
    {{ return(adapter.dispatch('cents_to_dollars')(column_name)) }}
{%- endmacro %}

{% macro default__cents_to_dollars(column_name) -%}
    round(cast({{ column_name }} as numeric) / 100, 2)
{%- endmacro %}
