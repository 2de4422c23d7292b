{#-
    try_cast_or_null(expression, data_type): the value cast to data_type, or null when it does not
    parse (never a failed build). The one safe cast every bronze and silver model uses for values
    that can fail to convert (numbers, timestamps, dates, booleans); silver turns the nulls into
    rejection reasons (unparseable_amount, unparseable_timestamp, ...).

      duckdb, databricks, spark   try_cast(<expr> as <type>)
      snowflake                   try_cast(cast(<expr> as varchar) as <type>): Snowflake's
                                  try_cast accepts string input only
      postgres                    no try_cast: a function per target type, created at the start
                                  of every run (create_try_cast_functions, on-run-start), that
                                  casts inside an exception handler and answers null

    dbt.safe_cast is not used: on DuckDB it is a plain cast (one bad value fails the whole load).
-#}
{% macro try_cast_or_null(expression, data_type) -%}
    {{ return(adapter.dispatch('try_cast_or_null', 'fraud_detection')(expression, data_type)) }}
{%- endmacro %}

{% macro default__try_cast_or_null(expression, data_type) -%}
    try_cast({{ expression }} as {{ data_type }})
{%- endmacro %}

{% macro snowflake__try_cast_or_null(expression, data_type) -%}
    try_cast(cast({{ expression }} as varchar) as {{ data_type }})
{%- endmacro %}

{#- The outer cast cannot fail (the function already returned a value of that type): it restores
    the type modifier, e.g. decimal(18, 2), which PostgreSQL drops from function results. -#}
{% macro postgres__try_cast_or_null(expression, data_type) -%}
    cast({{ try_cast_function_name(data_type) }}(cast({{ expression }} as text)) as {{ data_type }})
{%- endmacro %}

{#- PostgreSQL: the target types the project casts to; each gets a try_cast_<type> function. -#}
{% macro try_cast_types() -%}
    {{ return([dbt.type_timestamp(), 'decimal(18, 2)', dbt.type_boolean(), 'date']) }}
{%- endmacro %}

{% macro try_cast_function_name(data_type) -%}
    {%- set slug = modules.re.sub('[^a-z0-9]+', '_', data_type | lower) | trim('_') -%}
    {%- set known = [] -%}
    {%- for type_name in try_cast_types() -%}
        {%- do known.append(modules.re.sub('[^a-z0-9]+', '_', type_name | lower) | trim('_')) -%}
    {%- endfor -%}
    {%- if slug not in known -%}
        {{ exceptions.raise_compiler_error(
            "try_cast_or_null: no PostgreSQL function for type '" ~ data_type ~ "'; add it to "
            ~ "try_cast_types() in macros/helpers/try_cast.sql") }}
    {%- endif -%}
    {{ generate_schema_name('bronze', none) }}.try_cast_{{ slug }}
{%- endmacro %}

{% macro create_try_cast_functions() -%}
    {%- if execute -%}
        {{ return(adapter.dispatch('create_try_cast_functions', 'fraud_detection')()) }}
    {%- endif -%}
{%- endmacro %}

{#- Only PostgreSQL needs functions; the other engines have try_cast. -#}
{% macro default__create_try_cast_functions() -%}
    select 1
{%- endmacro %}

{#- 'infinity' and 'nan' are valid PostgreSQL timestamps / numerics: they answer null too, like
    try_cast on DuckDB, so every engine rejects the same rows. -#}
{% macro postgres__create_try_cast_functions() -%}
    create schema if not exists {{ generate_schema_name('bronze', none) }};
    {%- for type_name in try_cast_types() %}
    create or replace function {{ try_cast_function_name(type_name) }}(value text)
    returns {{ type_name }}
    language plpgsql
    immutable
    as $fn$
    begin
        if value ~* '^\s*[+-]?(nan|inf|infinity)\s*$' then
            return null;
        end if;
        return cast(value as {{ type_name }});
    exception when others then
        return null;
    end
    $fn$;
    {%- endfor %}
{%- endmacro %}
