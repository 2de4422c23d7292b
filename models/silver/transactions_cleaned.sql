{{
    config(
        materialized='incremental',
        incremental_strategy=incremental_merge_strategy(),
        unique_key='transaction_id',
        on_schema_change='fail',
    )
}}

{#-
    Valid transactions, one row per transaction_id. Incremental: each run takes the bronze rows
    loaded since the last run and merges them on transaction_id, so a late or corrected delivery
    of a transaction (same id in a later file, or a same-name file redelivered with new content:
    see bronze.load_log) updates it in place. Within one run the latest load, then the latest
    file wins; within one delivery the first valid row wins and later conflicting versions are
    rejected (see transactions_validated).
-#}

with

validated as (

    select * from {{ ref('transactions_validated') }}
    where
        rejection_reasons is null
    {% if is_incremental() %}
            and loaded_at > {{ max_loaded_at(this) }}
        {% endif %}

),

repeated_ids as (

    -- ids delivered more than once (a later file corrects an earlier one): only they need ranking
    select transaction_id
    from validated
    group by transaction_id
    having count(*) > 1

),

latest_version as (

    select
        *,
        row_number() over (
            partition by transaction_id
            order by loaded_at desc, source_file_name desc, source_row_number asc
        ) as version_rank
    from validated
    where transaction_id in (select repeated_ids.transaction_id from repeated_ids)

    union all

    select
        *,
        cast(1 as {{ dbt.type_bigint() }}) as version_rank
    from validated
    where transaction_id not in (select repeated_ids.transaction_id from repeated_ids)

),

final as (

    select
        transaction_id,
        customer_id,
        merchant_id,
        transaction_at,
        amount,
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
    from latest_version
    where version_rank = 1

)

select * from final
