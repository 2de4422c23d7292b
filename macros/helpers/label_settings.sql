{#-
    The label settings, validated once here (values, never SQL text):
      label_source      'fraud_reports' (default: the delayed label feed, source raw.fraud_reports)
                        or 'label_delay' (data without a report feed: a fraudulent transaction's
                        label becomes known var label_delay_days after it happened)
      label_delay_days  number of days, >= 0 (default 7); may be fractional
    A wrong value fails the build with a message naming the setting.
-#}
{% macro label_source() -%}
    {%- set value = var('label_source', 'fraud_reports') -%}
    {%- if value not in ['fraud_reports', 'label_delay'] -%}
        {{ exceptions.raise_compiler_error(
            "var label_source must be 'fraud_reports' or 'label_delay' (got " ~ (value | string) ~ ")") }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{#- label_delay_days as whole seconds (an integer literal is all that reaches the SQL). -#}
{% macro label_delay_seconds() -%}
    {%- set value = var('label_delay_days', 7) -%}
    {%- if value is boolean or value is not number or value < 0 or value > 3650 -%}
        {{ exceptions.raise_compiler_error(
            "var label_delay_days must be a number of days between 0 and 3650 (got "
            ~ (value | string) ~ ")") }}
    {%- endif -%}
    {{ return((value * 86400) | round | int) }}
{%- endmacro %}
