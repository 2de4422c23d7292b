{#-
    Overrides of dbt's grant SQL (dispatch puts fraud_detection before dbt), so that
      - the `grants` config, personas and levels ({data_engineers: all, ...}, see
        macros/governance/access.sql), is expanded into privileges and role names before dbt
        compares it with the grants the warehouse reports ("All grants are in place": an
        unchanged rerun neither revokes nor re-grants anything);
      - every grantee goes through quote_grantee (validated, quoted for the adapter) and every
        privilege through validate_privilege; dbt's own versions join the names into the
        statement raw (PostgreSQL, Snowflake) or quote them without validation (Databricks).

    Only the three adapters that apply grants are overridden: DuckDB keeps its own no-op.
-#}

{% macro fraud_detection_grantee_list(grantees) -%}
    {%- set quoted = [] -%}
    {%- for grantee in ([grantees] if grantees is string else grantees) -%}
        {%- do quoted.append(quote_grantee(grantee)) -%}
    {%- endfor -%}
    {{ return(quoted) }}
{%- endmacro %}

{#- PostgreSQL -#}

{% macro postgres__apply_grants(relation, grant_config, should_revoke=True) -%}
    {{ return(dbt.default__apply_grants(
        relation, access_grants(grant_config, relation.type), should_revoke)) }}
{%- endmacro %}

{%- macro postgres__get_grant_sql(relation, privilege, grantees) -%}
    grant {{ validate_privilege(privilege) }} on {{ relation.render() }} to {{ fraud_detection_grantee_list(grantees) | join(', ') }}
{%- endmacro -%}

{%- macro postgres__get_revoke_sql(relation, privilege, grantees) -%}
    revoke {{ validate_privilege(privilege) }} on {{ relation.render() }} from {{ fraud_detection_grantee_list(grantees) | join(', ') }}
{%- endmacro -%}

{#- Snowflake: one grantee per statement (dbt-snowflake's choice), to a role. -#}

{#- The fakesnow emulator (target snowflake_emulated, tests only) has no access control. -#}
{% macro snowflake__apply_grants(relation, grant_config, should_revoke=True) -%}
    {%- if target.name == 'snowflake_emulated' -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(dbt.default__apply_grants(
        relation, access_grants(grant_config, relation.type), should_revoke)) }}
{%- endmacro %}

{%- macro snowflake__get_grant_sql(relation, privilege, grantees) -%}
    grant {{ validate_privilege(privilege) }} on {{ relation.render() }} to role {{ fraud_detection_grantee_list(grantees) | join(', role ') }}
{%- endmacro -%}

{%- macro snowflake__get_revoke_sql(relation, privilege, grantees) -%}
    revoke {{ validate_privilege(privilege) }} on {{ relation.render() }} from role {{ fraud_detection_grantee_list(grantees) | join(', role ') }}
{%- endmacro -%}

{#- Databricks (Unity Catalog): one grantee per statement (dbt-spark's choice), backticks. -#}

{% macro databricks__apply_grants(relation, grant_config, should_revoke=True) -%}
    {{ return(dbt.default__apply_grants(
        relation, access_grants(grant_config, relation.type), should_revoke)) }}
{%- endmacro %}

{%- macro databricks__get_grant_sql(relation, privilege, grantees) -%}
    grant {{ validate_privilege(privilege) }} on {{ relation.render() }} to {{ fraud_detection_grantee_list(grantees) | join(', ') }}
{%- endmacro -%}

{%- macro databricks__get_revoke_sql(relation, privilege, grantees) -%}
    revoke {{ validate_privilege(privilege) }} on {{ relation.render() }} from {{ fraud_detection_grantee_list(grantees) | join(', ') }}
{%- endmacro -%}

{#- Open-source Spark (dbt-spark, target spark_local, tests only) has no access control: like
    DuckDB, grants are skipped there (the matrix is proven on PostgreSQL). dbt-databricks
    dispatches databricks__ first, so Databricks keeps the overrides above. -#}
{% macro spark__apply_grants(relation, grant_config, should_revoke=True) -%}
{%- endmacro %}
