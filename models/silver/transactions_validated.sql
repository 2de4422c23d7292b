{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
    )
}}

{#-
    Every bronze transaction row with the reasons it fails validation (null when it passes).
    Shared by transactions_cleaned (valid rows) and transactions_rejected (the rest), so a row
    can only ever land in one of them; materialised once so the checks run once per row, not
    once per reader. Incremental (exception to the folder's `table`): each run validates only
    the bronze rows loaded since the last run. Every check is either per row or within one
    file, and bronze loads a file once, so validating new loads alone gives the same result as
    validating everything. Checks, in order:
      exact_duplicate         identical to an earlier row of the same file
      missing_transaction_id / missing_customer_id / missing_merchant_id / missing_timestamp
      missing_amount / non_positive_amount
      unknown_currency        not in var accepted_currencies
      future_timestamp        after var as_of_date
      orphan_customer_id / orphan_merchant_id   key not in silver.customers / bronze.merchants_raw
      conflicting_duplicate   otherwise valid, but an earlier valid row of the same file has the
                              same transaction_id with different content
-#}

with

transactions as (

    select * from {{ ref('transactions_raw') }}
    {% if is_incremental() %}
        where loaded_at > {{ max_loaded_at(this) }}
    {% endif %}

),

customers as (

    select customer_id from {{ ref('customers') }}

),

merchants as (

    select distinct merchant_id from {{ ref('merchants_raw') }}

),

with_copy_number as (

    select
        transactions.*,
        row_number() over (
            partition by
                transactions.source_file_name,
                transactions.transaction_id,
                transactions.customer_id,
                transactions.merchant_id,
                transactions.transaction_at,
                transactions.amount,
                transactions.currency,
                transactions.transaction_type,
                transactions.merchant_category,
                transactions.device_id,
                transactions.ip_address,
                transactions.is_fraud
            order by transactions.source_row_number
        ) as copy_number
    from transactions

),

with_known_keys as (

    select
        with_copy_number.*,
        customers.customer_id is not null as has_known_customer,
        merchants.merchant_id is not null as has_known_merchant
    from with_copy_number
    left join customers
        on with_copy_number.customer_id = customers.customer_id
    left join merchants
        on with_copy_number.merchant_id = merchants.merchant_id

),

checked as (

    select
        *,
        case
            when copy_number > 1 then ', exact_duplicate'
            else
                case when transaction_id is null then ', missing_transaction_id' else '' end
                || case when customer_id is null then ', missing_customer_id' else '' end
                || case when merchant_id is null then ', missing_merchant_id' else '' end
                || case when transaction_at is null then ', missing_timestamp' else '' end
                || case when amount is null then ', missing_amount' else '' end
                || case when amount <= 0 then ', non_positive_amount' else '' end
                || case
                    when
                        currency is null
                        or currency not in (
                            {%- for currency in var('accepted_currencies') -%}
                            '{{ currency }}'{{ ', ' if not loop.last }}
                            {%- endfor -%}
                        )
                        then ', unknown_currency'
                    else ''
                end
                || case
                    when transaction_at > cast('{{ var("as_of_date") }}' as {{ dbt.type_timestamp() }})
                        then ', future_timestamp'
                    else ''
                end
                || case
                    when customer_id is not null and not has_known_customer
                        then ', orphan_customer_id'
                    else ''
                end
                || case
                    when merchant_id is not null and not has_known_merchant
                        then ', orphan_merchant_id'
                    else ''
                end
        end as failed_checks
    from with_known_keys

),

with_conflicts as (

    select
        *,
        failed_checks
        || case
            when
                failed_checks = ''
                and row_number() over (
                    partition by source_file_name, transaction_id, (failed_checks = '')
                    order by source_row_number
                ) > 1
                then ', conflicting_duplicate'
            else ''
        end as all_failed_checks
    from checked

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
        device_id,
        ip_address,
        is_fraud,
        source_file_name,
        source_row_number,
        loaded_at,
        -- drop the leading ', ' of the list; null when the row passed every check
        nullif(substr(all_failed_checks, 3), '') as rejection_reasons
    from with_conflicts

)

select * from final
