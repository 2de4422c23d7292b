{#-
    Portable pieces of the point-in-time window features (gold.transaction_risk_features).

    interval_literal(n, unit): an interval constant for a range frame,
      `range between {{ interval_literal(1, 'day') }} preceding and current row`, or timestamp
      arithmetic (`used_at + {{ interval_literal(1, 'day') }}`; dbt.dateadd on Databricks asks the
      warehouse for its capabilities, so it cannot compile offline).
      DuckDB and Spark take the ANSI form interval '1' day; Snowflake spells it interval '1 day'.
    (the double type of the feature columns is type_double(), macros/helpers/type_double.sql)
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
