{#-
    dbt's `grants` config grants on relations only; a reader also needs the schema (USAGE on
    PostgreSQL and Snowflake, USE SCHEMA on Databricks) and, on the warehouses, the database /
    catalog that holds it (USAGE on the Snowflake database, USE CATALOG on Unity Catalog).
    Run at the end of every run (on-run-end) for the schemas the run built (`schemas`). The
    grantees of each schema are every role that any model (seed, snapshot) of that schema grants anything to
    (access_grants, macros/governance/access.sql), so the access matrix is declared once, in
    dbt_project.yml. Grantees are quoted and validated by
    quote_grantee; a grant that fails (unknown role, missing privilege) fails the run.
    analyses/governance_dcl.sql renders the same statements without a connection.
-#}
{% macro schema_grantees() -%}
    {%- set grantees_by_schema = {} -%}
    {%- for node in graph.nodes.values()
            if node.resource_type in ['model', 'seed', 'snapshot'] and node.config.enabled
            and node.config.materialized != 'ephemeral' and node.config.grants -%}
        {%- set grantees = grantees_by_schema.setdefault(node.schema, []) -%}
        {%- for privilege, roles in access_grants(node.config.grants, access_relation_type(node)).items() -%}
            {%- for role in roles if role not in grantees -%}
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
    {#- The fakesnow emulator (target snowflake_emulated, tests only) has no access control. -#}
    {%- if target.name == 'snowflake_emulated' -%}
        {{ return('') }}
    {%- endif -%}
    {%- set grantees_by_schema = schema_grantees() -%}
    {%- set database_grantees = [] -%}
    {%- for schema in grantees_by_schema if schema in schemas -%}
        {%- for role in grantees_by_schema[schema] %}
            {%- if role not in database_grantees %}{% do database_grantees.append(role) %}{% endif %}
    grant usage on schema {{ target.database }}.{{ schema }} to role {{ quote_grantee(role) }};
        {%- endfor -%}
    {%- endfor -%}
    {%- for role in database_grantees %}
    grant usage on database {{ target.database }} to role {{ quote_grantee(role) }};
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

{% macro spark__grant_schema_usage(schemas) -%}
    {#- Open-source Spark (spark_local, tests only) has no access control: nothing to grant. -#}
{%- endmacro %}
