{#-
    The incremental strategy a model asks for, per adapter. Databricks (Delta), Snowflake and
    DuckDB merge; dbt-spark on local parquet (target spark_local, tests only) cannot merge (it
    needs Delta, Iceberg or Hudi), so it appends. Append equals merge there as long as a batch
    never redelivers a key an earlier batch had: true for transactions_rejected (keyed by file
    and row, each file loaded once); for transactions_cleaned a correction delivered in a later
    batch would duplicate the id, which its `unique` test then reports (README: engines); so
    for transaction_risk_features (keyed by transaction_id; a run features only the rows loaded
    since its newest loaded_at).
    Usage: config(incremental_strategy=incremental_merge_strategy())
-#}
{% macro incremental_merge_strategy() -%}
    {{ return('append' if target.type == 'spark' else 'merge') }}
{%- endmacro %}
