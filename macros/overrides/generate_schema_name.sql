{#-
    Users query fixed names (main.bronze.transactions_raw, main.gold.transaction_features, ...), so a
    model's custom schema is used as is instead of dbt's default "<target schema>_<custom>".
    In a developer sandbox, --vars '{schema_prefix: dbt_alice_}' gives dbt_alice_bronze etc.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ schema_prefix() ~ (custom_schema_name | trim) }}
    {%- endif -%}
{%- endmacro %}
