{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        enabled=var('decision_log_path', none) is not none,
    )
}}

{#-
    Every online decision of fraud-serve (bronze.decision_log_raw), typed as the audit log of
    the batch scores: one row per (decision, role). Append-only; each run adds the decisions
    loaded into bronze since the last one. Enabled only with var decision_log_path.
-#}

with

decisions as (

    select * from {{ ref('decision_log_raw') }}
    {% if is_incremental() %}
        where loaded_at > (select max(logged.loaded_at) from {{ this }} as logged)
    {% endif %}

),

final as (

    select
        decision_id as prediction_id,
        transaction_id,
        customer_id,
        merchant_id,
        make_timestamp(transaction_at_us) as transaction_at,
        make_timestamp(cast(round(decided_at * 1000000) as bigint)) as prediction_timestamp,
        role as model_role,
        model_name,
        model_version,
        model_alias,
        model_run_id,
        decision_threshold,
        fraud_probability as score,
        is_flagged,
        risk_band,
        reasons[1] as reason_1,
        reasons[2] as reason_2,
        reasons[3] as reason_3,
        source_file_name,
        loaded_at
    from decisions

)

select * from final
