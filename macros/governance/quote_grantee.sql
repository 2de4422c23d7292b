{#-
    Role names come from vars (data-engineers, ...) and must never be spliced into SQL raw.
    A name with a quote, backtick, semicolon, backslash or control character is rejected with a
    clear error; any other name (spaces and hyphens included) is quoted as an identifier:
      PostgreSQL  "name"     always: the exact name as stored in pg_roles
      Snowflake   "name"     when it is not a plain identifier (data-engineers, "de group");
                  NAME       a plain identifier (de_group) stays unquoted, so it resolves like
                             any Snowflake identifier (upper case), as in dbt's own grants
      Databricks  `name`     always (groups, users given by email, service principals)
-#}
{% macro quote_grantee(role) -%}
    {%- set role = role | string -%}
    {%- if role | trim | length == 0 or role | length > 128 -%}
        {{ exceptions.raise_compiler_error(
            "Invalid role name " ~ (role | tojson) ~ ": must be 1-128 characters and not blank") }}
    {%- endif -%}
    {%- if modules.re.search('["\'`;\\\\\\x00-\\x1f\\x7f]', role) -%}
        {{ exceptions.raise_compiler_error(
            "Invalid role name " ~ (role | tojson) ~ ": quotes, backticks, semicolons, backslashes"
            ~ " and control characters are not allowed in role names (check the role_* vars)") }}
    {%- endif -%}
    {{ return(adapter.dispatch('quote_grantee', 'fraud_detection')(role)) }}
{%- endmacro %}

{% macro default__quote_grantee(role) -%}
    {{ return('"' ~ role ~ '"') }}
{%- endmacro %}

{% macro snowflake__quote_grantee(role) -%}
    {%- if modules.re.fullmatch('[A-Za-z_][A-Za-z0-9_$]*', role) -%}
        {{ return(role) }}
    {%- endif -%}
    {{ return('"' ~ role ~ '"') }}
{%- endmacro %}

{% macro databricks__quote_grantee(role) -%}
    {{ return('`' ~ role ~ '`') }}
{%- endmacro %}

{#- A privilege name from a `grants` config key (select, insert, modify, all privileges, ...). -#}
{% macro validate_privilege(privilege) -%}
    {%- if not modules.re.fullmatch('[A-Za-z]+( [A-Za-z]+)*', privilege | string) -%}
        {{ exceptions.raise_compiler_error(
            "Invalid privilege " ~ (privilege | string | tojson) ~ " in a grants config: letters and"
            ~ " single spaces only (select, insert, modify, all privileges, ...)") }}
    {%- endif -%}
    {{ return(privilege | string) }}
{%- endmacro %}
