{#-
    Settings are values, never SQL text. Every var that reaches SQL goes through one of these
    macros, which validate it at compile time and return it; a bad value fails the compile with an
    error naming the var and what it must be (an injection attempt is just a bad value):

      iso_date_var(name)        YYYY-MM-DD and a real calendar date      as_of_date, min_transaction_date
      number_var(name)          a plain decimal number                     high_value_amount
      identifier_var(name, d)   [A-Za-z_][A-Za-z0-9_]*                     raw_file_name_column, raw_file_row_column
      raw_data_path()           letters, digits and _ . / - + @ : ~ only   raw_data_path
      decision_log_path()       the same                                    decision_log_path
      schema_prefix()           letters, digits and _ (may be empty)       schema_prefix
    Role names are validated where they are quoted (macros/governance/quote_grantee.sql).
    Lists of accepted values are not settings: they are seeds (seeds/*.csv).
-#}

{% macro _invalid_var(name, value, expected) -%}
    {{ exceptions.raise_compiler_error(
        "Invalid var " ~ name ~ " = " ~ (value | string | tojson) ~ ": must be " ~ expected
        ~ ". Settings are values, never SQL text.") }}
{%- endmacro %}

{% macro iso_date_var(name) -%}
    {%- set value = var(name) -%}
    {#- unquoted YAML (as_of_date: 2018-08-01) arrives as a date: use its ISO form -#}
    {%- if value is not string and value.isoformat is defined and value.hour is not defined -%}
        {%- set value = value.isoformat() -%}
    {%- endif -%}
    {%- set match = modules.re.fullmatch('([0-9]{4})-([0-9]{2})-([0-9]{2})', value | string) -%}
    {%- if value is not string or not match -%}
        {{ _invalid_var(name, value, 'an ISO date YYYY-MM-DD (quoted in YAML)') }}
    {%- endif -%}
    {%- set year = match.group(1) | int -%}
    {%- set month = match.group(2) | int -%}
    {%- set day = match.group(3) | int -%}
    {%- if year < 1 or month < 1 or month > 12 or day < 1 -%}
        {{ _invalid_var(name, value, 'a real calendar date YYYY-MM-DD') }}
    {%- endif -%}
    {%- set next_month = modules.datetime.date(year + (month // 12), (month % 12) + 1, 1) -%}
    {%- if day > (next_month - modules.datetime.timedelta(days=1)).day -%}
        {{ _invalid_var(name, value, 'a real calendar date YYYY-MM-DD') }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{% macro number_var(name) -%}
    {%- set value = var(name) -%}
    {%- if value is boolean or not modules.re.fullmatch('-?[0-9]+(\.[0-9]+)?', value | string) -%}
        {{ _invalid_var(name, value, 'a number such as 1000 or 999.99') }}
    {%- endif -%}
    {{ return(value | string) }}
{%- endmacro %}

{% macro identifier_var(name, default) -%}
    {%- set value = var(name, default) -%}
    {%- if value is not string or not modules.re.fullmatch('[A-Za-z_][A-Za-z0-9_]*', value) -%}
        {{ _invalid_var(name, value, 'a column name (letters, digits, underscores)') }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{#- The default must match models/bronze/raw/_raw__sources.yml (YAML cannot call macros). -#}
{% macro raw_data_path() -%}
    {%- set value = var('raw_data_path', 'tests/fixtures/small' if target.name == 'test' else 'data/raw') -%}
    {%- if value is not string or not modules.re.fullmatch('[A-Za-z0-9_./+@:~ -]+', value) -%}
        {{ _invalid_var('raw_data_path', value,
            'a folder path of letters, digits, spaces and _ . / - + @ : ~ (no quotes)') }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{#- The default must match models/bronze/raw/_raw__decision_log_sources.yml. -#}
{% macro decision_log_path() -%}
    {%- set value = var('decision_log_path', 'warehouse/decisions') -%}
    {%- if value is not string or not modules.re.fullmatch('[A-Za-z0-9_./+@:~ -]+', value) -%}
        {{ _invalid_var('decision_log_path', value,
            'a folder path of letters, digits, spaces and _ . / - + @ : ~ (no quotes)') }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{% macro schema_prefix() -%}
    {%- set value = var('schema_prefix', '') -%}
    {%- if value is not string or not modules.re.fullmatch('[A-Za-z0-9_]*', value) -%}
        {{ _invalid_var('schema_prefix', value, 'letters, digits and underscores (or empty)') }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{#- The vars of the validation rules, checked together (every silver model calls this). -#}
{% macro validate_rule_vars() -%}
    {#- accepted_currencies was a var; it is the seed now: no model
        reads it, and passing it is an error, so no one believes it still switches a rule. -#}
    {%- set cli_vars = invocation_args_dict.get('vars') or {} -%}
    {%- if 'accepted_currencies' in (cli_vars if cli_vars is mapping else (cli_vars | string)) -%}
        {{ exceptions.raise_compiler_error(
            "var accepted_currencies is deprecated and read by no model: accepted currencies are the seed "
            ~ "seeds/accepted_currencies.csv (add a currency with a reviewed CSV line), not a setting.") }}
    {%- endif -%}
    {%- set lower_bound = iso_date_var('min_transaction_date') -%}
    {%- set as_of = iso_date_var('as_of_date') -%}
    {%- if lower_bound >= as_of -%}
        {{ _invalid_var('min_transaction_date', lower_bound, 'before var as_of_date (' ~ as_of ~ ')') }}
    {%- endif -%}
{%- endmacro %}
