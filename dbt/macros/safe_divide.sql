{#- (numerator) / (denominator) as a double, null when the denominator is 0. -#}
{% macro safe_divide(numerator, denominator) -%}
    case when ({{ denominator }}) = 0 then null
         else cast(({{ numerator }}) as double precision) / ({{ denominator }}) end
{%- endmacro %}
