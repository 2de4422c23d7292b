{#-
    dbt-databricks' datediff asks the warehouse which DBR capabilities it has
    (adapter.has_dbr_capability('timestampdiff')), which needs a connection. With
    --vars '{offline_compile: true}' (CI compile with no warehouse) it assumes timestampdiff,
    which every SQL warehouse and DBR >= 10.4 has; otherwise it asks, as dbt-databricks does.
-#}
{% macro databricks__datediff(first_date, second_date, datepart) -%}
    {%- if var('offline_compile', false) or adapter.has_dbr_capability('timestampdiff') -%}
        timestampdiff({{ datepart }}, {{ dbt.date_trunc(datepart, first_date) }}, {{ dbt.date_trunc(datepart, second_date) }})
    {%- else -%}
        {{ spark__datediff(first_date, second_date, datepart) }}
    {%- endif -%}
{%- endmacro %}
