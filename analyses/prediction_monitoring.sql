{#- The original notebook's monitoring query, unchanged except for relation names: daily volume,
    anomaly rate and average confidence per model and version. `dbt compile --select
    prediction_monitoring` renders it for the current target (Python models, and so this
    analysis, exist only on adapters that run them). -#}
{{ config(enabled=target.type in ['duckdb', 'databricks', 'snowflake']) }}

with

predictions as (

    select * from {{ ref('model_predictions') }}

),

final as (

    select
        model_name,
        model_version,
        date_trunc('day', prediction_timestamp) as prediction_date,
        count(*) as total_predictions,
        avg(case when is_anomaly then 1.0 else 0.0 end) as anomaly_rate,
        avg(confidence) as avg_confidence
    from predictions
    group by model_name, model_version, date_trunc('day', prediction_timestamp)

)

select * from final
