{#-
    The governance DCL this project issues on a warehouse target, rendered by `dbt compile`
    without a connection (CI: --vars '{offline_compile: true}' --no-populate-cache
    --no-introspect), for review and for tests/python/test_offline_compile.py:
      1. on-run-start: the mask_email function (macros/governance/mask_email.sql)
      2. each model's `grants` config as dbt applies it to a new relation: personas expanded by
         access_grants (macros/governance/access.sql), SQL by macros/overrides/grants.sql
      3. on-run-end: schema (and catalog / database) usage (macros/governance/grant_schema_usage.sql)
    Not run by dbt build; the hooks and materializations issue the same statements.
    DuckDB has no roles (dbt-duckdb skips grants): nothing is rendered there.
-#}
{%- if execute and target.type in ['postgres', 'snowflake', 'databricks'] -%}
    {%- set built_schemas = [] -%}
-- 1. on-run-start
{{ create_mask_email_function() }}

-- 2. model grants
    {%- for node in graph.nodes.values() | sort(attribute='unique_id')
            if node.resource_type in ['model', 'seed', 'snapshot']
                and node.config.materialized != 'ephemeral' %}
        {%- if node.schema not in built_schemas %}{% do built_schemas.append(node.schema) %}{% endif %}
        {%- set relation = api.Relation.create(
            database=node.database, schema=node.schema, identifier=node.alias,
            type=('view' if node.config.materialized == 'view' else 'table')) %}
-- {{ node.unique_id }}
        {%- for dcl in get_dcl_statement_list(
                relation, access_grants(node.config.grants, relation.type), get_grant_sql) %}
{{ dcl | trim }};
        {%- endfor %}
    {%- endfor %}

-- 3. on-run-end
{{ grant_schema_usage(built_schemas) }}
{%- else %}
-- {{ target.type }}: no roles, no grants (see tests/python/test_governance.py for PostgreSQL)
{%- endif %}
