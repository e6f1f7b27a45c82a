{#- One row per month start between the history_start and history_end vars (DuckDB and PostgreSQL). -#}
{% macro month_spine() -%}
    select cast(gs.month_start as date) as month_start
    from generate_series(
        cast('{{ var("history_start") }}' as timestamp),
        cast('{{ var("history_end") }}' as timestamp),
        interval '1 month'
    ) as gs(month_start)
{%- endmacro %}
