{#- True when the timestamp falls on a Saturday or Sunday (UTC). Day-of-week numbering differs
    between engines (Snowflake even depends on a session parameter), so each gets its own. -#}
{% macro is_weekend(timestamp_column) -%}
    {{ return(adapter.dispatch('is_weekend', 'fraud_detection')(timestamp_column)) }}
{%- endmacro %}

{% macro default__is_weekend(timestamp_column) -%}
    (extract(isodow from {{ timestamp_column }}) in (6, 7))
{%- endmacro %}

{% macro snowflake__is_weekend(timestamp_column) -%}
    (dayofweekiso({{ timestamp_column }}) in (6, 7))
{%- endmacro %}

{% macro databricks__is_weekend(timestamp_column) -%}
    (dayofweek({{ timestamp_column }}) in (1, 7))
{%- endmacro %}

{% macro spark__is_weekend(timestamp_column) -%}
    (dayofweek({{ timestamp_column }}) in (1, 7))
{%- endmacro %}
