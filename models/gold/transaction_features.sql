{#-
    One row per customer with at least one valid transaction: the 16 model features.
    Definitions (documented per column in _gold__models.yml):
      high value      amount >= var high_value_amount (default 1000, inclusive)
      weekend         Saturday or Sunday, UTC
      tenure          whole days from created_date to var as_of_date (never the wall clock)
      per day         transactions / days spanned by the first and last transaction (inclusive)
    Ratios are 0 when undefined (single transaction: stddev 0, volatility 0).
-#}

with

transactions as (

    select * from {{ ref('transactions_cleaned') }}

),

customers as (

    select * from {{ ref('customers') }}

),

flagged as (

    select
        customer_id,
        merchant_id,
        merchant_category,
        amount,
        transaction_at,
        case when {{ is_weekend('transaction_at') }} then 1 else 0 end as is_weekend_transaction,
        case when amount >= {{ number_var('high_value_amount') }} then 1 else 0 end as is_high_value_transaction
    from transactions

),

per_customer as (

    select
        customer_id,
        count(*) as total_transactions,
        sum(amount) as total_spend,
        -- in double: avg of a decimal keeps only 6 decimals on Spark/Databricks (and Snowflake)
        avg(cast(amount as {{ type_double() }})) as avg_transaction_amount,
        coalesce(stddev_samp(cast(amount as {{ type_double() }})), 0) as stddev_transaction_amount,
        min(amount) as min_transaction_amount,
        max(amount) as max_transaction_amount,
        count(distinct merchant_category) as unique_merchant_categories,
        count(distinct merchant_id) as unique_merchants,
        sum(is_weekend_transaction) as weekend_transactions,
        sum(is_high_value_transaction) as high_value_transactions,
        min(transaction_at) as first_transaction_at,
        max(transaction_at) as last_transaction_at
    from flagged
    group by customer_id

),

final as (

    select
        per_customer.customer_id,
        cast(per_customer.total_transactions as {{ dbt.type_bigint() }}) as total_transactions,
        cast(per_customer.total_spend as decimal(18, 2)) as total_spend,
        cast(per_customer.avg_transaction_amount as {{ type_double() }}) as avg_transaction_amount,
        cast(per_customer.stddev_transaction_amount as {{ type_double() }}) as stddev_transaction_amount,
        cast(per_customer.min_transaction_amount as decimal(18, 2)) as min_transaction_amount,
        cast(per_customer.max_transaction_amount as decimal(18, 2)) as max_transaction_amount,
        cast(per_customer.unique_merchant_categories as {{ dbt.type_bigint() }}) as unique_merchant_categories,
        cast(per_customer.unique_merchants as {{ dbt.type_bigint() }}) as unique_merchants,
        cast(per_customer.weekend_transactions as {{ dbt.type_bigint() }}) as weekend_transactions,
        cast(per_customer.high_value_transactions as {{ dbt.type_bigint() }}) as high_value_transactions,
        cast(
            {{ dbt.datediff('customers.created_date', "cast('" ~ iso_date_var('as_of_date') ~ "' as date)", 'day') }}
            as {{ dbt.type_bigint() }}
        ) as customer_tenure_days,
        cast(
            per_customer.stddev_transaction_amount / nullif(per_customer.avg_transaction_amount, 0)
            as {{ type_double() }}
        ) as amount_volatility,
        cast(
            per_customer.max_transaction_amount / nullif(per_customer.avg_transaction_amount, 0)
            as {{ type_double() }}
        ) as max_to_avg_ratio,
        cast(
            1.0 * per_customer.weekend_transactions / per_customer.total_transactions
            as {{ type_double() }}
        ) as weekend_transaction_rate,
        cast(
            1.0 * per_customer.high_value_transactions / per_customer.total_transactions
            as {{ type_double() }}
        ) as high_value_transaction_rate,
        cast(
            1.0 * per_customer.total_transactions
            / (
                {{ dbt.datediff(
                    'cast(per_customer.first_transaction_at as date)',
                    'cast(per_customer.last_transaction_at as date)',
                    'day'
                ) }} + 1
            )
            as {{ type_double() }}
        ) as avg_transactions_per_day
    from per_customer
    inner join customers
        on per_customer.customer_id = customers.customer_id

)

select * from final
