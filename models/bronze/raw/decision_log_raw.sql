{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        enabled=var('decision_log_path', none) is not none,
    )
}}

{#-
    Bronze copy of the online decision log (source decision_log.decisions): one row per logged
    decision, with the file it came from. Incremental (exception to the folder's `table`): the
    log files are appended to while a server runs, so each run adds the decisions whose id is
    not loaded yet, whatever file they are in. Enabled only with var decision_log_path.
-#}

{#- the folder reaches SQL through the source: validated here, so a bad value fails the compile -#}
{%- set log_folder = decision_log_path() -%}

with

source_rows as (

    select * from {{ source('decision_log', 'decisions') }}

),

final as (

    select
        decision_id,
        decided_at,
        role,
        transaction_id,
        customer_id,
        merchant_id,
        transaction_at_us,
        model_name,
        model_version,
        model_alias,
        model_run_id,
        decision_threshold,
        fraud_probability,
        is_flagged,
        risk_band,
        reasons,
        decision_us,
        parse_filename(filename) as source_file_name,
        {{ load_timestamp() }} as loaded_at
    from source_rows
    where
        decision_id is not null
        {% if is_incremental() %}
            and decision_id not in (select loaded.decision_id from {{ this }} as loaded)
        {% endif %}

)

select * from final
