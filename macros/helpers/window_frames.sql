{#-
    Portable pieces of the point-in-time window features (gold.transaction_risk_features).

    interval_literal(n, unit): an interval constant for a range frame,
      `range between {{ interval_literal(1, 'day') }} preceding and current row`.
      DuckDB and Spark take the ANSI form interval '1' day; Snowflake spells it interval '1 day'.
    windowed_distinct_count(expression, window): distinct non-null values over a window.
      DuckDB and Snowflake: count(distinct ...) over (...); Spark has no distinct window
      aggregates: size(collect_set(...)) over (...).
-#}
{% macro interval_literal(number, unit) -%}
    {{ return(adapter.dispatch('interval_literal', 'fraud_detection')(number, unit)) }}
{%- endmacro %}

{% macro default__interval_literal(number, unit) -%}
    interval '{{ number | int }}' {{ unit }}
{%- endmacro %}

{% macro snowflake__interval_literal(number, unit) -%}
    interval '{{ number | int }} {{ unit }}'
{%- endmacro %}

{% macro windowed_distinct_count(expression, window) -%}
    {{ return(adapter.dispatch('windowed_distinct_count', 'fraud_detection')(expression, window)) }}
{%- endmacro %}

{% macro default__windowed_distinct_count(expression, window) -%}
    count(distinct {{ expression }}) over ({{ window }})
{%- endmacro %}

{% macro spark__windowed_distinct_count(expression, window) -%}
    size(collect_set({{ expression }}) over ({{ window }}))
{%- endmacro %}

{% macro databricks__windowed_distinct_count(expression, window) -%}
    size(collect_set({{ expression }}) over ({{ window }}))
{%- endmacro %}
