{{
    config(
        materialized='incremental',
        incremental_strategy=incremental_merge_strategy(),
        unique_key='rejection_id',
        on_schema_change='fail',
    )
}}

{#-
    Every bronze row that failed validation, with its reasons, keyed by where it came from
    (file, row and load: a redelivered file is a new delivery). Incremental like transactions_cleaned; merging on rejection_id makes a
    repeated run a no-op.
-#}

with

validated as (

    select * from {{ ref('transactions_validated') }}
    where
        rejection_reasons is not null
    {% if is_incremental() %}
            and loaded_at > {{ max_loaded_at(this) }}
        {% endif %}

),

final as (

    select
        {{ dbt.hash(dbt.concat([
            "source_file_name",
            "'#'",
            "cast(source_row_number as " ~ dbt.type_string() ~ ")",
            "'@'",
            "cast(loaded_at as " ~ dbt.type_string() ~ ")",
        ])) }}
            as rejection_id,
        rejection_reasons,
        -- the first reason, for grouping and dashboards
        {{ dbt.split_part('rejection_reasons', "', '", 1) }} as primary_rejection_reason,
        transaction_id,
        customer_id,
        merchant_id,
        transaction_at,
        transaction_at_as_delivered,
        amount,
        amount_as_delivered,
        currency,
        transaction_type,
        merchant_category,
        customer_country,
        device_id,
        ip_address,
        is_fraud,
        source_file_name,
        source_row_number,
        source_file_hash,
        loaded_at
    from validated

)

select * from final
