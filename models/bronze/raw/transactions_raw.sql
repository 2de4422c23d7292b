{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook=[
            "{{ assert_landing_files_readable('transactions', transaction_source_columns()) }}",
            "{{ assert_source_not_empty(source('raw', 'transactions')) }}",
        ],
    )
}}

{#-
    Exception to the folder's `table`: each landing file is a delivery, appended once. A file is
    new when its (name, content hash) differs from the latest delivery of that name already here,
    so a corrected file with the same name is loaded again as a new delivery (its rows supersede
    the earlier ones by transaction_id in silver) instead of being skipped; bronze.load_log
    records every delivery. Values are cast with try_cast_or_null: a value that does not parse is
    null here, kept as delivered in the *_as_delivered column, and rejected with its reason in
    silver; it never fails the load.
-#}

with

source_rows as (

    select * from {{ source('raw', 'transactions') }}

),

landing_files as (

    {{ landing_files('transactions') }}

),

typed as (

    select
        cast(source_rows.transaction_id as {{ dbt.type_string() }}) as transaction_id,
        cast(source_rows.customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(source_rows.merchant_id as {{ dbt.type_string() }}) as merchant_id,
        {{ try_cast_or_null('source_rows.transaction_timestamp', dbt.type_timestamp()) }} as transaction_at,
        cast(source_rows.transaction_timestamp as {{ dbt.type_string() }}) as transaction_at_as_delivered,
        {{ try_cast_or_null('source_rows.amount', 'decimal(18, 2)') }} as amount,
        cast(source_rows.amount as {{ dbt.type_string() }}) as amount_as_delivered,
        cast(source_rows.currency as {{ dbt.type_string() }}) as currency,
        cast(source_rows.transaction_type as {{ dbt.type_string() }}) as transaction_type,
        cast(source_rows.merchant_category as {{ dbt.type_string() }}) as merchant_category,
        cast(source_rows.device_id as {{ dbt.type_string() }}) as device_id,
        cast(source_rows.ip_address as {{ dbt.type_string() }}) as ip_address,
        {{ try_cast_or_null('source_rows.is_fraud', dbt.type_boolean()) }} as is_fraud,
        cast(source_rows.is_fraud as {{ dbt.type_string() }}) as is_fraud_as_delivered,
        {{ source_lineage_columns() }},
        landing_files.content_hash as source_file_hash,
        {{ load_timestamp() }} as loaded_at
    from source_rows
    left join landing_files
        on source_rows.{{ landing_file_path_column() }} = landing_files.file_path

),

{% if is_incremental() %}

    loaded_deliveries as (

        select distinct
            source_file_name,
            source_file_hash,
            loaded_at
        from {{ this }}

    ),

    latest_deliveries as (

        select
            source_file_name,
            source_file_hash,
            row_number() over (partition by source_file_name order by loaded_at desc) as recency
        from loaded_deliveries

    ),

{% endif %}

final as (

    select typed.* from typed
    {% if is_incremental() %}
        where not exists (
            select 1 from latest_deliveries
            where
                latest_deliveries.recency = 1
                and latest_deliveries.source_file_name = typed.source_file_name
                and coalesce(latest_deliveries.source_file_hash, '')
                = coalesce(typed.source_file_hash, '')
        )
    {% endif %}

)

select * from final
