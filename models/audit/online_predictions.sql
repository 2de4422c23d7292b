{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        enabled=var('decision_log_path', none) is not none
            or target.type in ['duckdb', 'databricks', 'snowflake'],
    )
}}

{#-
    Every online decision of fraud-serve (bronze.decision_log_raw), typed as the audit log of
    the batch scores: one row per (decision, role). Append-only; each run adds the decisions
    loaded into bronze since the last one. Without var decision_log_path there is no log to
    read: the model is then an empty table of the same columns where audit.model_predictions
    (which reads it) runs, and disabled elsewhere.
-#}

{%- set has_log = var('decision_log_path', none) is not none %}

with

{% if has_log %}

decisions as (

    select * from {{ ref('decision_log_raw') }}
    {% if is_incremental() %}
        where loaded_at > (
            select coalesce(max(logged.loaded_at), {{ dbt.cast("'1970-01-01'", dbt.type_timestamp()) }})
            from {{ this }} as logged
        )
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
        cast(decision_us as bigint) as decision_us,
        source_file_name,
        loaded_at
    from decisions

)

{% else %}

final as (

    select
        cast(null as {{ dbt.type_string() }}) as prediction_id,
        cast(null as {{ dbt.type_string() }}) as transaction_id,
        cast(null as {{ dbt.type_string() }}) as customer_id,
        cast(null as {{ dbt.type_string() }}) as merchant_id,
        cast(null as {{ dbt.type_timestamp() }}) as transaction_at,
        cast(null as {{ dbt.type_timestamp() }}) as prediction_timestamp,
        cast(null as {{ dbt.type_string() }}) as model_role,
        cast(null as {{ dbt.type_string() }}) as model_name,
        cast(null as bigint) as model_version,
        cast(null as {{ dbt.type_string() }}) as model_alias,
        cast(null as {{ dbt.type_string() }}) as model_run_id,
        cast(null as double) as decision_threshold,
        cast(null as double) as score,
        cast(null as {{ dbt.type_boolean() }}) as is_flagged,
        cast(null as {{ dbt.type_string() }}) as risk_band,
        cast(null as {{ dbt.type_string() }}) as reason_1,
        cast(null as {{ dbt.type_string() }}) as reason_2,
        cast(null as {{ dbt.type_string() }}) as reason_3,
        cast(null as bigint) as decision_us,
        cast(null as {{ dbt.type_string() }}) as source_file_name,
        cast(null as {{ dbt.type_timestamp() }}) as loaded_at
    where 1 = 0

)

{% endif %}

select * from final
