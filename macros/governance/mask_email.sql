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
    {{ return(adapter.dispatch('mask_email_function', 'fraud_detection')()) }}
{%- endmacro %}

{% macro default__mask_email_function() -%}
    {{ return(target.database ~ '.' ~ generate_schema_name('silver', none) ~ '.mask_email') }}
{%- endmacro %}

{#- dbt-databricks dispatches databricks__, then spark__: keep Unity Catalog's three parts. -#}
{% macro databricks__mask_email_function() -%}
    {{ return(default__mask_email_function()) }}
{%- endmacro %}

{#- Open-source Spark (dbt-spark, local tests): one catalog, so schema.function. -#}
{% macro spark__mask_email_function() -%}
    {{ return(generate_schema_name('silver', none) ~ '.mask_email') }}
{%- endmacro %}

{#- Call site used by models: mask_email('email') -> <catalog>.silver.mask_email(email) -#}
{#- The fakesnow emulator (target snowflake_emulated, tests only) has no SQL UDFs: there the
    Snowflake function's body is inlined, so the same Snowflake SQL still runs. -#}
{% macro mask_email(column_name) -%}
    {%- if target.name == 'snowflake_emulated' -%}
        {{ snowflake__mask_email_body(column_name) }}
    {%- else -%}
        {{ mask_email_function() }}({{ column_name }})
    {%- endif -%}
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

{% macro snowflake__mask_email_body(email) -%}
    case
            when {{ email }} is null then null
            when position('@', {{ email }}) = 0 then '***'
            else left({{ email }}, least(2, position('@', {{ email }}) - 1))
                || '***@'
                || substr({{ email }}, position('@', {{ email }}) + 1)
        end
{%- endmacro %}

{% macro snowflake__create_mask_email_function() -%}
    create schema if not exists {{ target.database }}.{{ generate_schema_name('silver', none) }};
    {%- if target.name != 'snowflake_emulated' %}
    create or replace function {{ mask_email_function() }}(email varchar)
    returns varchar
    language sql
    as $$
        {{ snowflake__mask_email_body('email') }}
    $$;
    {%- endif %}
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

{#- Open-source Spark 4 (dbt-spark, local tests only): the same SQL function as on Databricks,
    without a catalog. -#}
{% macro spark__create_mask_email_function() -%}
    {#- Spark runs one statement per call: the schema first, then the function (the hook). -#}
    {%- do run_query('create schema if not exists ' ~ generate_schema_name('silver', none)) -%}
    create or replace function {{ mask_email_function() }}(email string)
    returns string
    return case
        when email is null then null
        when instr(email, '@') = 0 then '***'
        else concat(
            left(email, least(2, instr(email, '@') - 1)),
            '***@',
            substr(email, instr(email, '@') + 1)
        )
    end
{%- endmacro %}
