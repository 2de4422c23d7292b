{#-
    mask_email is a real function in the warehouse, created at the start of every run
    (on-run-start) in the silver schema, and called by silver.customers_masked.

    Rule (the same on every engine, no regular expressions, because their semantics differ):
      null                      -> null
      no '@'                    -> '***'              (nothing of the value is revealed)
      'jo.doe@example.com'      -> 'jo***@example.com' (first two characters, ***, the domain)
      'a@example.com'           -> 'a***@example.com'
      '@example.com'            -> '***@example.com'
    The domain is everything after the first '@'.
-#}

{% macro mask_email_function() -%}
    {{ target.database }}.{{ generate_schema_name('silver', none) }}.mask_email
{%- endmacro %}

{#- Call site used by models: mask_email('email') -> <catalog>.silver.mask_email(email) -#}
{% macro mask_email(column_name) -%}
    {{ mask_email_function() }}({{ column_name }})
{%- endmacro %}

{% macro create_mask_email_function() -%}
    {%- if execute -%}
        {{ return(adapter.dispatch('create_mask_email_function', 'fraud_detection')()) }}
    {%- endif -%}
{%- endmacro %}

{% macro default__create_mask_email_function() -%}
    {{ exceptions.raise_compiler_error(
        "mask_email has no implementation for adapter '" ~ adapter.type() ~ "'; add "
        ~ adapter.type() ~ "__create_mask_email_function in macros/governance/mask_email.sql") }}
{%- endmacro %}

{% macro duckdb__create_mask_email_function() -%}
    create schema if not exists {{ target.database }}.{{ generate_schema_name('silver', none) }};
    create or replace macro {{ mask_email_function() }}(email) as
        case
            when email is null then null
            when strpos(email, '@') = 0 then '***'
            else left(email, least(2, strpos(email, '@') - 1))
                || '***@'
                || substr(email, strpos(email, '@') + 1)
        end;
{%- endmacro %}

{% macro postgres__create_mask_email_function() -%}
    create schema if not exists {{ generate_schema_name('silver', none) }};
    create or replace function {{ generate_schema_name('silver', none) }}.mask_email(email text)
    returns text
    language sql
    immutable
    as $fn$
        select case
            when email is null then null
            when strpos(email, '@') = 0 then '***'
            else left(email, least(2, strpos(email, '@') - 1))
                || '***@'
                || substr(email, strpos(email, '@') + 1)
        end
    $fn$;
{%- endmacro %}

{% macro snowflake__create_mask_email_function() -%}
    create schema if not exists {{ target.database }}.{{ generate_schema_name('silver', none) }};
    create or replace function {{ mask_email_function() }}(email varchar)
    returns varchar
    language sql
    as $$
        case
            when email is null then null
            when position('@', email) = 0 then '***'
            else left(email, least(2, position('@', email) - 1))
                || '***@'
                || substr(email, position('@', email) + 1)
        end
    $$;
{%- endmacro %}

{% macro databricks__create_mask_email_function() -%}
    create schema if not exists {{ target.database }}.{{ generate_schema_name('silver', none) }};
    create or replace function {{ mask_email_function() }}(email string)
    returns string
    comment 'Masks an email: first two characters, ***, then the domain (fraud_detection dbt project)'
    return case
        when email is null then null
        when instr(email, '@') = 0 then '***'
        else concat(
            left(email, least(2, instr(email, '@') - 1)),
            '***@',
            substr(email, instr(email, '@') + 1)
        )
    end;
{%- endmacro %}
