{#- An 8-byte float. `double precision` is standard SQL (DuckDB, PostgreSQL, Snowflake) but a
    syntax error in Spark SQL and on Databricks, whose name is `double`; dbt.type_float() is a
    4-byte `float` on DuckDB. -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'fraud_detection')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    {{ return('double precision') }}
{%- endmacro %}

{% macro spark__type_double() -%}
    {{ return('double') }}
{%- endmacro %}
