{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ assert_source_not_empty(source('raw', 'transactions')) }}",
    )
}}

{#- Exception to the folder's `table`: a landing file is loaded once, appended by file name. -#}

with

source_rows as (

    select * from {{ source('raw', 'transactions') }}

),

typed as (

    select
        cast(transaction_id as {{ dbt.type_string() }}) as transaction_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(merchant_id as {{ dbt.type_string() }}) as merchant_id,
        {{ dbt.safe_cast('transaction_timestamp', dbt.type_timestamp()) }} as transaction_at,
        {{ dbt.safe_cast('amount', 'decimal(18, 2)') }} as amount,
        cast(currency as {{ dbt.type_string() }}) as currency,
        cast(transaction_type as {{ dbt.type_string() }}) as transaction_type,
        cast(merchant_category as {{ dbt.type_string() }}) as merchant_category,
        cast(device_id as {{ dbt.type_string() }}) as device_id,
        cast(ip_address as {{ dbt.type_string() }}) as ip_address,
        {{ dbt.safe_cast('is_fraud', dbt.type_boolean()) }} as is_fraud,
        {{ source_lineage_columns() }},
        {{ load_timestamp() }} as loaded_at
    from source_rows

),

final as (

    select * from typed
    {% if is_incremental() %}
        where source_file_name not in (select distinct source_file_name from {{ this }})
    {% endif %}

)

select * from final
