{{
    config(
        materialized='incremental',
        incremental_strategy=incremental_merge_strategy(),
        unique_key='transaction_id',
        on_schema_change='fail',
    )
}}

{#-
    Point-in-time features for every valid transaction (definitions per column in
    _gold__transaction_risk_features.yml). For a transaction at time t every window is [t - N, t):
    a transaction exactly N earlier counts, the current transaction does not, and neither does
    any other transaction at exactly t (equal timestamps never see each other, whatever their
    order in the file: deterministic, and what an online scorer can reproduce). A label counts
    only when label_known_at < t (silver.fraud_labels).

    Portable frames: `range between interval 'N' unit preceding and current row` covers
    [t - N, t]; the rows at exactly t (the peers, `partition by ..., transaction_at`) are
    subtracted to get [t - N, t). Every feature looks back at most 30 days, so it can be kept
    online as windowed state and an incremental run reads only that lookback.

    Incremental: rows of silver.transactions_cleaned loaded after this table's newest loaded_at
    get features, computed over the transactions and labels of the 30 days before the earliest of
    them. A transaction that arrives late (older than rows already featured) does not rewrite
    those rows: they keep what was known when they were built; --full-refresh recomputes all.
-#}

{%- set customer_windows = [('1h', 1, 'hour'), ('1d', 1, 'day'), ('7d', 7, 'day'), ('30d', 30, 'day')] -%}
{%- set merchant_windows = [('1d', 1, 'day'), ('7d', 7, 'day'), ('30d', 30, 'day')] -%}
{%- set lookback_days = 30 -%}

with

transactions_cleaned as (

    select * from {{ ref('transactions_cleaned') }}

),

fraud_labels as (

    select * from {{ ref('fraud_labels') }}

),

customers as (

    select * from {{ ref('customers') }}

),

{% if is_incremental() %}

    new_batch as (

        select min(transactions_cleaned.transaction_at) as first_new_at
        from transactions_cleaned
        where transactions_cleaned.loaded_at > {{ max_loaded_at(this) }}

    ),

{% endif %}

transactions as (

    -- the rows to feature (is_target) and the lookback they need
    select
        transactions_cleaned.transaction_id,
        transactions_cleaned.customer_id,
        transactions_cleaned.merchant_id,
        transactions_cleaned.transaction_at,
        -- exact decimal: window sums are exact, then one conversion to double (same on every engine)
        transactions_cleaned.amount,
        transactions_cleaned.transaction_type,
        transactions_cleaned.merchant_category,
        transactions_cleaned.device_id,
        transactions_cleaned.ip_address,
        transactions_cleaned.loaded_at,
    {% if is_incremental() %}
            transactions_cleaned.loaded_at > {{ max_loaded_at(this) }} as is_target
        from transactions_cleaned
        cross join new_batch
        where
            transactions_cleaned.transaction_at
            >= new_batch.first_new_at - {{ interval_literal(lookback_days, 'day') }}
        {% else %}
    true as is_target
from transactions_cleaned
    {% endif %}

),

labels as (

    select
        fraud_labels.merchant_id,
        fraud_labels.label_known_at
    {% if is_incremental() %}
        from fraud_labels
        cross join new_batch
        where
            fraud_labels.label_known_at
            >= new_batch.first_new_at - {{ interval_literal(lookback_days, 'day') }}
    {% else %}
    from fraud_labels
    {% endif %}

),

customer_history as (

    -- windows over the customer's transactions, [t - N, t] and the peers at exactly t.
    -- The sums' explicit decimal cast (a no-op on every warehouse) keeps them exact on the
    -- fakesnow emulator too, which otherwise sums any uncast argument as double (its
    -- numeric_agg_implicit_cast); real Snowflake sums number(18, 2) exactly.
    select
        *,
        {%- for name, number, unit in customer_windows %}
        count(*) over (
            partition by customer_id order by transaction_at
            range between {{ interval_literal(number, unit) }} preceding and current row
        ) as customer_count_to_{{ name }},
        sum(cast(amount as decimal(18, 2))) over (
            partition by customer_id order by transaction_at
            range between {{ interval_literal(number, unit) }} preceding and current row
        ) as customer_sum_to_{{ name }},
        {%- endfor %}
        count(*) over (partition by customer_id, transaction_at) as customer_peer_count,
        sum(cast(amount as decimal(18, 2))) over (partition by customer_id, transaction_at)
            as customer_peer_sum,
        lag(transaction_at) over (
            partition by customer_id order by transaction_at, transaction_id
        ) as previous_row_at,
        count(*) over (
            partition by customer_id, device_id order by transaction_at
            range between {{ interval_literal(lookback_days, 'day') }} preceding and current row
        ) - count(*) over (partition by customer_id, device_id, transaction_at) as device_uses_30d,
        count(*) over (
            partition by customer_id, ip_address order by transaction_at
            range between {{ interval_literal(lookback_days, 'day') }} preceding and current row
        ) - count(*) over (partition by customer_id, ip_address, transaction_at) as ip_uses_30d,
        count(*) over (
            partition by customer_id, merchant_id order by transaction_at
            range between {{ interval_literal(lookback_days, 'day') }} preceding and current row
        ) - count(*) over (partition by customer_id, merchant_id, transaction_at) as merchant_visits_30d
    from transactions

),

customer_previous as (

    -- the previous distinct timestamp: only the first peer's lag can be before t
    select
        *,
        min(case when previous_row_at < transaction_at then previous_row_at end)
            over (partition by customer_id, transaction_at) as previous_transaction_at
    from customer_history

),

{% for family, column in [('device', 'device_id'), ('ip', 'ip_address')] %}

{{ family }}_uses as (

    -- each instant a customer used a {{ family }}, with the previous and next such instant
    select
        customer_id,
        used_at,
        lag(used_at) over (partition by customer_id, used_value order by used_at) as previous_used_at,
        lead(used_at) over (partition by customer_id, used_value order by used_at) as next_used_at
    from (
        select distinct
            customer_id,
            {{ column }} as used_value,
            transaction_at as used_at
        from transactions
        where {{ column }} is not null
    ) as distinct_uses

),

{% endfor %}

activity_events as (

    {#- A value used at s is "in the last day" for every t in (s, s + 1 day]. Overlapping periods
        of one value merge; each merged period is +1 at its first use and -1 one day after its
        last use. The distinct values used in [t - 1 day, t) are the sum of the events before t:
        no distinct window aggregate (Spark and Snowflake have none with a frame), and the same
        counter an online scorer keeps. -#}
    {%- for family in ['device', 'ip'] %}
    select
        customer_id,
        used_at as event_at,
        cast(null as {{ dbt.type_string() }}) as transaction_id,
        {{ '1' if family == 'device' else '0' }} as device_delta,
        {{ '1' if family == 'ip' else '0' }} as ip_delta
    from {{ family }}_uses
    where
        previous_used_at is null
        or previous_used_at + {{ interval_literal(1, 'day') }} < used_at

    union all

    select
        customer_id,
        used_at + {{ interval_literal(1, 'day') }} as event_at,
        cast(null as {{ dbt.type_string() }}) as transaction_id,
        {{ '-1' if family == 'device' else '0' }} as device_delta,
        {{ '-1' if family == 'ip' else '0' }} as ip_delta
    from {{ family }}_uses
    where
        next_used_at is null
        or next_used_at > used_at + {{ interval_literal(1, 'day') }}

    union all
    {%- endfor %}

    select
        customer_id,
        transaction_at as event_at,
        transaction_id,
        0 as device_delta,
        0 as ip_delta
    from transactions

),

recent_activity as (

    -- running sums of the events strictly before t (the ones at exactly t subtracted)
    select
        transaction_id,
        sum(device_delta) over (
            partition by customer_id order by event_at
            range between unbounded preceding and current row
        ) - sum(device_delta) over (partition by customer_id, event_at) as distinct_devices_1d,
        sum(ip_delta) over (
            partition by customer_id order by event_at
            range between unbounded preceding and current row
        ) - sum(ip_delta) over (partition by customer_id, event_at) as distinct_ips_1d
    from activity_events

),

merchant_events as (

    select
        merchant_id,
        transaction_at as event_at,
        transaction_id,
        1 as is_transaction_event,
        0 as is_label_event
    from transactions

    union all

    select
        merchant_id,
        label_known_at as event_at,
        cast(null as {{ dbt.type_string() }}) as transaction_id,
        0 as is_transaction_event,
        1 as is_label_event
    from labels

),

merchant_history as (

    -- the merchant's transactions and the fraud labels that became known, [t - N, t) each
    select
        transaction_id,
        {%- for name, number, unit in merchant_windows %}
        sum(is_transaction_event) over (
            partition by merchant_id order by event_at
            range between {{ interval_literal(number, unit) }} preceding and current row
        ) - sum(is_transaction_event) over (partition by merchant_id, event_at)
            as merchant_txn_count_{{ name }},
        sum(is_label_event) over (
            partition by merchant_id order by event_at
            range between {{ interval_literal(number, unit) }} preceding and current row
        ) - sum(is_label_event) over (partition by merchant_id, event_at)
            as merchant_fraud_count_{{ name }},
        {%- endfor %}
        is_transaction_event
    from merchant_events

),

final as (

    select
        customer_previous.transaction_id,
        customer_previous.customer_id,
        customer_previous.merchant_id,
        customer_previous.transaction_at,
        cast(customer_previous.amount as {{ type_double() }}) as amount,
        cast(extract(hour from customer_previous.transaction_at) as integer) as transaction_hour,
        extract(hour from customer_previous.transaction_at) < 6 as is_night,
        {{ is_weekend('customer_previous.transaction_at') }} as is_weekend,
        customer_previous.transaction_type,
        customer_previous.merchant_category,
        {%- for name, number, unit in customer_windows %}
            {%- set count_before = '(customer_previous.customer_count_to_' ~ name
                ~ ' - customer_previous.customer_peer_count)' %}
            {%- set sum_before = 'cast(customer_previous.customer_sum_to_' ~ name
                ~ ' - customer_previous.customer_peer_sum as ' ~ type_double() ~ ')' %}
        cast({{ count_before }} as {{ dbt.type_bigint() }}) as customer_txn_count_{{ name }},
        coalesce({{ sum_before }}, 0.0) as customer_amount_sum_{{ name }},
        case
            when {{ count_before }} > 0 then {{ sum_before }} / {{ count_before }}
            else 0.0
        end as customer_amount_avg_{{ name }},
        {%- endfor %}
        {%- for name in ['7d', '30d'] %}
            {%- set count_before = '(customer_previous.customer_count_to_' ~ name
                ~ ' - customer_previous.customer_peer_count)' %}
            {%- set sum_before = 'cast(customer_previous.customer_sum_to_' ~ name
                ~ ' - customer_previous.customer_peer_sum as ' ~ type_double() ~ ')' %}
        case
            when {{ count_before }} > 0
                then cast(customer_previous.amount as {{ type_double() }}) * {{ count_before }} / {{ sum_before }}
            else 1.0
        end as amount_to_customer_avg_{{ name }},
        {%- endfor %}
        -- capped at the lookback: the same value whether or not an older transaction exists
        cast(least(
            coalesce(
                {{ dbt.datediff(
                    'customer_previous.previous_transaction_at', 'customer_previous.transaction_at', 'second'
                ) }},
                {{ lookback_days * 86400 }}
            ),
            {{ lookback_days * 86400 }}
        ) as {{ dbt.type_bigint() }}) as seconds_since_previous_txn,
        customer_previous.device_uses_30d = 0 as is_new_device_30d,
        customer_previous.ip_uses_30d = 0 as is_new_ip_30d,
        customer_previous.merchant_visits_30d = 0 as is_new_merchant_for_customer_30d,
        cast(recent_activity.distinct_devices_1d as {{ dbt.type_bigint() }}) as distinct_devices_1d,
        cast(recent_activity.distinct_ips_1d as {{ dbt.type_bigint() }}) as distinct_ips_1d,
        {%- for name, number, unit in merchant_windows %}
        cast(merchant_history.merchant_txn_count_{{ name }} as {{ dbt.type_bigint() }})
            as merchant_txn_count_{{ name }},
        cast(merchant_history.merchant_fraud_count_{{ name }} as {{ dbt.type_bigint() }})
            as merchant_fraud_count_{{ name }},
        case
            when merchant_history.merchant_txn_count_{{ name }} > 0
                then
                    cast(merchant_history.merchant_fraud_count_{{ name }} as {{ type_double() }})
                    / merchant_history.merchant_txn_count_{{ name }}
            else 0.0
        end as merchant_fraud_rate_{{ name }},
        {%- endfor %}
        cast(greatest(
            {{ dbt.datediff('customers.created_date', 'customer_previous.transaction_at', 'day') }}, 0
        ) as {{ dbt.type_bigint() }}) as customer_tenure_days,
        customer_previous.customer_count_to_30d = customer_previous.customer_peer_count as is_new_customer,
        merchant_history.merchant_txn_count_30d = 0 as is_new_merchant,
        customer_previous.loaded_at
    from customer_previous
    inner join merchant_history
        on customer_previous.transaction_id = merchant_history.transaction_id
    inner join recent_activity
        on customer_previous.transaction_id = recent_activity.transaction_id
    inner join customers
        on customer_previous.customer_id = customers.customer_id
    where
        customer_previous.is_target
        and merchant_history.is_transaction_event = 1

)

select * from final
