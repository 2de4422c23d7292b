-- Hand-written DuckDB reference for gold.transaction_risk_features, straight from the Parquet
-- landing files (no dbt): the benchmark times it against the dbt build, and
-- tests/python/test_transaction_risk_features.py checks that it gives the same table.
-- Placeholders (substituted by the caller): ${raw} = landing folder, ${as_of} = var as_of_date.
-- Formulated independently of the model where DuckDB allows: frames end at 1 microsecond
-- before t (timestamps are microseconds, so [t - N, t - 1us] = [t - N, t)) instead of
-- subtracting the rows at exactly t, and distinct counts are plain windowed count(distinct).
with

raw as (
    select
        transaction_id, customer_id, merchant_id,
        cast(transaction_timestamp as timestamp) as transaction_at,
        cast(amount as decimal(18, 2)) as amount,
        currency, transaction_type, merchant_category, device_id, ip_address,
        cast(is_fraud as boolean) as is_fraud,
        parse_filename(filename) as file, file_row_number as row_no
    from read_parquet('${raw}/transactions/*.parquet', filename = true, file_row_number = true)
),

customers as (select * from read_parquet('${raw}/customers/*.parquet')),

first_customers as (
    select customer_id, created_date
    from customers
    where customer_id is not null
    qualify row_number() over (partition by customer_id order by customer_id) = 1
),

merchants as (select distinct merchant_id from read_parquet('${raw}/merchants/*.parquet')),

checked as (
    select
        raw.*,
        row_number() over (
            partition by file, transaction_id, raw.customer_id, raw.merchant_id, transaction_at, amount,
                currency, transaction_type, merchant_category, device_id, ip_address, is_fraud
            order by row_no
        ) > 1
        or transaction_id is null or raw.customer_id is null or raw.merchant_id is null
        or transaction_at is null or amount is null or amount <= 0
        or coalesce(currency not in ('USD', 'EUR', 'GBP', 'CAD'), true)
        or transaction_at > timestamp '${as_of}'
        or c.customer_id is null or m.merchant_id is null as is_bad
    from raw
    left join first_customers as c on raw.customer_id = c.customer_id
    left join merchants as m on raw.merchant_id = m.merchant_id
),

valid_in_file as (
    select * from checked
    where not is_bad
    qualify row_number() over (partition by file, transaction_id order by row_no) = 1
),

cleaned as (
    select * from valid_in_file
    qualify row_number() over (partition by transaction_id order by file desc, row_no) = 1
),

reports as (
    select
        r.transaction_id,
        cast(r.reported_at as timestamp) as reported_at,
        c.merchant_id,
        greatest(cast(r.reported_at as timestamp), c.transaction_at) as label_known_at
    from read_parquet('${raw}/fraud_reports/*.parquet', filename = true, file_row_number = true) as r
    inner join cleaned as c on r.transaction_id = c.transaction_id
    where
        r.reported_at is not null
        and r.report_type in ('chargeback', 'customer_claim', 'issuer_alert')
        and cast(r.reported_at as timestamp) <= timestamp '${as_of}'
    qualify row_number() over (
        partition by r.transaction_id
        order by r.reported_at, parse_filename(r.filename), r.file_row_number
    ) = 1
),

customer_windows as (
    select
        transaction_id, customer_id, merchant_id, transaction_at,
        cast(amount as double) as amount, transaction_type, merchant_category,
        count(*) over w1h as c1h, coalesce(sum(amount) over w1h, 0) as s1h,
        count(*) over w1d as c1d, coalesce(sum(amount) over w1d, 0) as s1d,
        count(*) over w7d as c7d, coalesce(sum(amount) over w7d, 0) as s7d,
        count(*) over w30d as c30d, coalesce(sum(amount) over w30d, 0) as s30d,
        max(transaction_at) over w30d as previous_at,
        count(distinct device_id) over w1d as distinct_devices_1d,
        count(distinct ip_address) over w1d as distinct_ips_1d,
        count(*) over (
            partition by customer_id, device_id order by transaction_at
            range between interval 30 day preceding and interval 1 microsecond preceding
        ) as device_uses,
        count(*) over (
            partition by customer_id, ip_address order by transaction_at
            range between interval 30 day preceding and interval 1 microsecond preceding
        ) as ip_uses,
        count(*) over (
            partition by customer_id, merchant_id order by transaction_at
            range between interval 30 day preceding and interval 1 microsecond preceding
        ) as merchant_visits
    from cleaned
    window
        w1h as (partition by customer_id order by transaction_at
            range between interval 1 hour preceding and interval 1 microsecond preceding),
        w1d as (partition by customer_id order by transaction_at
            range between interval 1 day preceding and interval 1 microsecond preceding),
        w7d as (partition by customer_id order by transaction_at
            range between interval 7 day preceding and interval 1 microsecond preceding),
        w30d as (partition by customer_id order by transaction_at
            range between interval 30 day preceding and interval 1 microsecond preceding)
),

merchant_events as (
    select merchant_id, transaction_at as event_at, transaction_id, 1 as tx, 0 as lab from cleaned
    union all
    select merchant_id, label_known_at, null, 0, 1 from reports
),

merchant_windows as (
    select
        transaction_id,
        coalesce(sum(tx) over m1d, 0) as mt1d, coalesce(sum(lab) over m1d, 0) as mf1d,
        coalesce(sum(tx) over m7d, 0) as mt7d, coalesce(sum(lab) over m7d, 0) as mf7d,
        coalesce(sum(tx) over m30d, 0) as mt30d, coalesce(sum(lab) over m30d, 0) as mf30d,
        tx
    from merchant_events
    window
        m1d as (partition by merchant_id order by event_at
            range between interval 1 day preceding and interval 1 microsecond preceding),
        m7d as (partition by merchant_id order by event_at
            range between interval 7 day preceding and interval 1 microsecond preceding),
        m30d as (partition by merchant_id order by event_at
            range between interval 30 day preceding and interval 1 microsecond preceding)
)

select
    c.transaction_id, c.customer_id, c.merchant_id, c.transaction_at, c.amount,
    cast(hour(c.transaction_at) as integer) as transaction_hour,
    hour(c.transaction_at) < 6 as is_night,
    isodow(c.transaction_at) in (6, 7) as is_weekend,
    c.transaction_type, c.merchant_category,
    c.c1h as customer_txn_count_1h, cast(c.s1h as double) as customer_amount_sum_1h,
    if(c.c1h > 0, c.s1h / c.c1h, 0.0) as customer_amount_avg_1h,
    c.c1d as customer_txn_count_1d, cast(c.s1d as double) as customer_amount_sum_1d,
    if(c.c1d > 0, c.s1d / c.c1d, 0.0) as customer_amount_avg_1d,
    c.c7d as customer_txn_count_7d, cast(c.s7d as double) as customer_amount_sum_7d,
    if(c.c7d > 0, c.s7d / c.c7d, 0.0) as customer_amount_avg_7d,
    c.c30d as customer_txn_count_30d, cast(c.s30d as double) as customer_amount_sum_30d,
    if(c.c30d > 0, c.s30d / c.c30d, 0.0) as customer_amount_avg_30d,
    if(c.c7d > 0, c.amount / (c.s7d / c.c7d), 1.0) as amount_to_customer_avg_7d,
    if(c.c30d > 0, c.amount / (c.s30d / c.c30d), 1.0) as amount_to_customer_avg_30d,
    coalesce(date_diff('second', c.previous_at, c.transaction_at), 2592000) as seconds_since_previous_txn,
    c.device_uses = 0 as is_new_device_30d,
    c.ip_uses = 0 as is_new_ip_30d,
    c.merchant_visits = 0 as is_new_merchant_for_customer_30d,
    c.distinct_devices_1d, c.distinct_ips_1d,
    m.mt1d as merchant_txn_count_1d, m.mf1d as merchant_fraud_count_1d,
    if(m.mt1d > 0, m.mf1d / m.mt1d, 0.0) as merchant_fraud_rate_1d,
    m.mt7d as merchant_txn_count_7d, m.mf7d as merchant_fraud_count_7d,
    if(m.mt7d > 0, m.mf7d / m.mt7d, 0.0) as merchant_fraud_rate_7d,
    m.mt30d as merchant_txn_count_30d, m.mf30d as merchant_fraud_count_30d,
    if(m.mt30d > 0, m.mf30d / m.mt30d, 0.0) as merchant_fraud_rate_30d,
    greatest(date_diff('day', cu.created_date, c.transaction_at), 0) as customer_tenure_days,
    c.c30d = 0 as is_new_customer,
    m.mt30d = 0 as is_new_merchant
from customer_windows as c
inner join merchant_windows as m on c.transaction_id = m.transaction_id and m.tx = 1
inner join first_customers as cu on c.customer_id = cu.customer_id
