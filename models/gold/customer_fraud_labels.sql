{#- Ground truth per customer for training and evaluation: a customer is fraudulent when any of
    its valid transactions is labelled fraud. Kept out of transaction_features so the feature
    contract stays the 16 model inputs. -#}

with

transactions as (

    select * from {{ ref('transactions_cleaned') }}

),

final as (

    select
        customer_id,
        max(case when is_fraud then 1 else 0 end) = 1 as is_fraudulent,
        cast(sum(case when is_fraud then 1 else 0 end) as {{ dbt.type_bigint() }}) as fraud_transactions
    from transactions
    group by customer_id

)

select * from final
