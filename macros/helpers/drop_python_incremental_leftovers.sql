{#- dbt-duckdb leaves "<model>__dbt_tmp<timestamp>" tables behind after an incremental Python
    model run; the append-only Python models drop them in a post-hook. -#}
{% macro drop_python_incremental_leftovers() -%}
    {%- if execute and target.type == 'duckdb' -%}
        {%- set leftovers = run_query(
            "select table_schema, table_name from information_schema.tables"
            ~ " where table_catalog = '" ~ target.database ~ "'"
            ~ " and starts_with(table_name, '" ~ this.identifier ~ "__dbt_tmp')") -%}
        {%- for row in leftovers.rows %}
    drop table if exists {{ adapter.quote(target.database) }}.{{ adapter.quote(row[0]) }}.{{ adapter.quote(row[1]) }};
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
