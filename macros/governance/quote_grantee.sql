{#-
    Role names come from vars (data-engineers, ...) and must never be spliced into SQL raw.
    A name with a quote, backtick, semicolon or control character is rejected with a clear error;
    any other name is quoted as an identifier for the adapter.
-#}
{% macro quote_grantee(role) -%}
    {%- set role = role | string -%}
    {%- if role | length == 0 or role | length > 128 -%}
        {{ exceptions.raise_compiler_error("Invalid role name " ~ (role | tojson) ~ ": must be 1-128 characters") }}
    {%- endif -%}
    {%- for bad in ['"', "'", '`', ';', '\\', '\n', '\r', '\t'] if bad in role -%}
        {{ exceptions.raise_compiler_error("Invalid role name " ~ (role | tojson) ~ ": quotes, backticks, semicolons, backslashes and control characters are not allowed in role names") }}
    {%- endfor -%}
    {{ return(adapter.dispatch('quote_grantee', 'fraud_detection')(role)) }}
{%- endmacro %}

{% macro default__quote_grantee(role) -%}
    {{ return('"' ~ role ~ '"') }}
{%- endmacro %}

{% macro databricks__quote_grantee(role) -%}
    {{ return('`' ~ role ~ '`') }}
{%- endmacro %}
