{#-
    The fakesnow emulator (target snowflake_emulated, tests only: tests/python/end_to_end/test_engines.py)
    does not parse `create table <name> (<column list>) as select`, the DDL dbt-snowflake emits
    for an enforced contract. There the column list is left out; the contract's column names and
    types are still checked by dbt before the table is created. Real Snowflake is unchanged.
-#}
{% macro snowflake__get_table_columns_and_constraints() -%}
    {%- if target.name == 'snowflake_emulated' -%}
        {{ return('') }}
    {%- endif -%}
    {{ return(dbt.default__get_table_columns_and_constraints()) }}
{%- endmacro %}
