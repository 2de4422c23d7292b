{#-
    PII must not leak into relations readers without PII access can query: the silver no-PII
    views (models/governed), gold, ml_models and audit. A column is PII when any source or model
    marks a column of that name `meta: {pii: true}`. In those relations such a column may only
    appear masked: `masked_by: mask_email` (values must have the mask's shape) or
    `masked_by: nulled` / undeclared (values must all be null).
    One failing row per relation and column that breaks the rule, with how many values leak.
-#}
-- depends_on: {{ ref('customers_masked') }}
-- depends_on: {{ ref('transactions_cleaned_no_pii') }}
-- depends_on: {{ ref('transaction_features') }}
-- depends_on: {{ ref('customer_fraud_labels') }}
{%- if target.type in ['duckdb', 'databricks', 'snowflake'] %}
{#- the Python models exist only where Python models run -#}
-- depends_on: {{ ref('fraud_scores') }}
-- depends_on: {{ ref('model_predictions') }}
-- depends_on: {{ ref('isolation_forest_training_runs') }}
-- depends_on: {{ ref('random_forest_training_runs') }}
{%- endif %}
{%- set governed_folders = ['governed', 'gold', 'ml', 'audit'] -%}
{%- set checks = [] -%}
{#- Offline compile (no connection) renders the empty check. -#}
{%- if execute and not var('offline_compile', false) -%}
{%- set pii_names = [] -%}
{%- for node in (graph.nodes.values() | list) + (graph.sources.values() | list) -%}
        {%- for column in node.columns.values()
                if (column.config.meta or column.meta or {}).get('pii') and column.name | lower not in pii_names -%}
{%- do pii_names.append(column.name | lower) -%}
{%- endfor -%}
{%- endfor -%}
    {%- for node in graph.nodes.values()
            if node.resource_type == 'model' and node.config.enabled
            and node.config.materialized != 'ephemeral' and node.fqn[1] in governed_folders -%}
{%- set relation = adapter.get_relation(node.database, node.schema, node.alias) -%}
{%- if relation is not none -%}
            {%- for column in adapter.get_columns_in_relation(relation)
                    if column.name | lower in pii_names -%}
                {%- set declared = node.columns.get(column.name) or node.columns.get(column.name | lower) -%}
                {%- set masked_by = ((declared.config.meta or declared.meta or {}).get('masked_by') if declared else none) -%}
                {%- if masked_by == 'mask_email' -%}
                    {%- set leak = column.quoted ~ " is not null and " ~ column.quoted ~ " != '***' and "
                        ~ dbt.position("'***@'", column.quoted) ~ " not between 1 and 3" -%}
                {%- else -%}
                    {%- set leak = column.quoted ~ " is not null" -%}
                {%- endif -%}
                {%- do checks.append(
                    "select '" ~ relation ~ "' as relation_name, '" ~ column.name ~ "' as column_name, "
                    ~ "count(*) as unmasked_values from " ~ relation ~ " where " ~ leak
                ) -%}
            {%- endfor -%}
        {%- endif -%}
{%- endfor -%}
{%- endif %}

with

checked as (

    {% for check in checks %}
        {{ check }}
        {% if not loop.last %}union all{% endif %}
    {% else %}
    select
        cast(null as {{ dbt.type_string() }}) as relation_name,
        cast(null as {{ dbt.type_string() }}) as column_name,
        0 as unmasked_values
    {% endfor %}

),

final as (

    select * from checked
    where unmasked_values > 0

)

select * from final
