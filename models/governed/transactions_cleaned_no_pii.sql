{#- Valid transactions without device and network identifiers: the columns stay (so queries
    written against transactions_cleaned still run) but are always null. -#}

with

transactions as (

    select * from {{ ref('transactions_cleaned') }}

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
        cast(null as {{ dbt.type_string() }}) as device_id,
        cast(null as {{ dbt.type_string() }}) as ip_address,
        is_fraud
    from transactions

)

select * from final
