{#-
    dbt's `grants` config grants on relations only; a reader also needs the schema (USAGE on
    PostgreSQL and Snowflake, USE SCHEMA on Databricks; USE CATALOG too on Unity Catalog).
    Run at the end of every run (on-run-end). The grantees of each schema are derived from the
    models' own `grants` config, so the access matrix is declared once, in dbt_project.yml.
-#}
{% macro schema_grantees() -%}
    {%- set grantees_by_schema = {} -%}
    {%- for node in graph.nodes.values()
            if node.resource_type == 'model' and node.config.enabled and node.config.grants -%}
        {%- set grantees = grantees_by_schema.setdefault(node.schema, []) -%}
        {%- for privilege, roles in node.config.grants.items() -%}
            {%- for role in ([roles] if roles is string else roles) if role not in grantees -%}
                {%- do grantees.append(role) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(grantees_by_schema) }}
{%- endmacro %}

{% macro grant_schema_usage(schemas) -%}
    {%- if execute -%}
        {{ return(adapter.dispatch('grant_schema_usage', 'fraud_detection')(schemas)) }}
    {%- endif -%}
{%- endmacro %}

{% macro default__grant_schema_usage(schemas) -%}
    {%- set grantees_by_schema = schema_grantees() -%}
    {%- for schema in grantees_by_schema if schema in schemas -%}
        {%- for role in grantees_by_schema[schema] %}
    grant usage on schema {{ adapter.quote(schema) }} to {{ quote_grantee(role) }};
        {%- endfor -%}
    {%- endfor -%}
{%- endmacro %}

{% macro snowflake__grant_schema_usage(schemas) -%}
    {%- set grantees_by_schema = schema_grantees() -%}
    {%- for schema in grantees_by_schema if schema in schemas -%}
        {%- for role in grantees_by_schema[schema] %}
    grant usage on schema {{ target.database }}.{{ schema }} to role {{ quote_grantee(role) }};
        {%- endfor -%}
    {%- endfor -%}
{%- endmacro %}

{% macro databricks__grant_schema_usage(schemas) -%}
    {%- set grantees_by_schema = schema_grantees() -%}
    {%- set catalog_grantees = [] -%}
    {%- for schema in grantees_by_schema if schema in schemas -%}
        {%- for role in grantees_by_schema[schema] %}
            {%- if role not in catalog_grantees %}{% do catalog_grantees.append(role) %}{% endif %}
    grant use schema on schema {{ target.database }}.{{ schema }} to {{ quote_grantee(role) }};
        {%- endfor -%}
    {%- endfor -%}
    {%- for role in catalog_grantees %}
    grant use catalog on catalog {{ target.database }} to {{ quote_grantee(role) }};
    {%- endfor -%}
{%- endmacro %}

{% macro duckdb__grant_schema_usage(schemas) -%}
    {#- DuckDB has no roles: nothing to grant (tests/governance proves the matrix on PostgreSQL). -#}
{%- endmacro %}
