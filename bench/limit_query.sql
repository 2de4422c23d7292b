-- The one-query limit of the benchmark (bench/harness.py, part `limit`): the 16 gold
-- features in one DuckDB statement straight over the landing Parquet files. The
-- harness fills {customers}, {merchants}, {tx_glob} (quoted paths), {currencies},
-- {as_of} and {high_value}; see limit_query() for why it equals the dbt models.
with
customers as (
    select
        cast(customer_id as varchar) as customer_id,
        cast(created_date as date) as created_date
    from read_parquet({customers}, filename = true, file_row_number = true, union_by_name = true)
    where customer_id is not null
    qualify row_number() over (
        partition by customer_id order by parse_filename(filename), file_row_number
    ) = 1
),
merchants as (
    select distinct cast(merchant_id as varchar) as merchant_id
    from read_parquet({merchants}, union_by_name = true)
),
kept as (
    select
        cast(t.customer_id as varchar) as customer_id,
        cast(t.merchant_id as varchar) as merchant_id,
        cast(t.merchant_category as varchar) as merchant_category,
        cast(t.amount as decimal(18, 2)) as amount,
        cast(t.transaction_timestamp as timestamp) as transaction_at
    from read_parquet({tx_glob}, filename = true, file_row_number = true, union_by_name = true) t
    where
        t.transaction_id is not null
        and t.customer_id is not null
        and t.merchant_id is not null
        and t.transaction_timestamp is not null
        and cast(t.amount as decimal(18, 2)) > 0
        and t.currency in ({currencies})
        and cast(t.transaction_timestamp as timestamp) <= cast('{as_of}' as timestamp)
        and cast(t.customer_id as varchar) in (select customer_id from customers)
        and cast(t.merchant_id as varchar) in (select merchant_id from merchants)
    qualify row_number() over (
        partition by t.transaction_id
        order by parse_filename(t.filename) desc, t.file_row_number asc
    ) = 1
),
per_customer as (
    select
        customer_id,
        count(*) as total_transactions,
        sum(amount) as total_spend,
        avg(amount) as avg_amount,
        coalesce(stddev_samp(amount), 0) as stddev_amount,
        min(amount) as min_amount,
        max(amount) as max_amount,
        count(distinct merchant_category) as unique_merchant_categories,
        count(distinct merchant_id) as unique_merchants,
        count(*) filter (where extract(isodow from transaction_at) in (6, 7)) as weekend,
        count(*) filter (where amount >= {high_value}) as high_value,
        min(transaction_at) as first_at,
        max(transaction_at) as last_at
    from kept
    group by customer_id
)
select
    p.customer_id,
    cast(p.total_transactions as bigint) as total_transactions,
    cast(p.total_spend as decimal(18, 2)) as total_spend,
    cast(p.avg_amount as double) as avg_transaction_amount,
    cast(p.stddev_amount as double) as stddev_transaction_amount,
    cast(p.min_amount as decimal(18, 2)) as min_transaction_amount,
    cast(p.max_amount as decimal(18, 2)) as max_transaction_amount,
    cast(p.unique_merchant_categories as bigint) as unique_merchant_categories,
    cast(p.unique_merchants as bigint) as unique_merchants,
    cast(p.weekend as bigint) as weekend_transactions,
    cast(p.high_value as bigint) as high_value_transactions,
    cast(date_diff('day', c.created_date::timestamp, cast('{as_of}' as date)::timestamp) as bigint)
        as customer_tenure_days,
    cast(p.stddev_amount / nullif(p.avg_amount, 0) as double) as amount_volatility,
    cast(p.max_amount / nullif(p.avg_amount, 0) as double) as max_to_avg_ratio,
    cast(1.0 * p.weekend / p.total_transactions as double) as weekend_transaction_rate,
    cast(1.0 * p.high_value / p.total_transactions as double) as high_value_transaction_rate,
    cast(
        1.0 * p.total_transactions
        / (date_diff('day', cast(p.first_at as date)::timestamp,
                     cast(p.last_at as date)::timestamp) + 1)
        as double
    ) as avg_transactions_per_day
from per_customer p
inner join customers c on p.customer_id = c.customer_id
