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
    delivery (file name + load), and bronze loads a delivery once, so validating new loads alone
    gives the same result as validating everything. Every domain a data test checks downstream
    is a rule here, so a value that would fail a test is rejected instead of merged. Checks, in
    order (reference data: the seeds in seeds/):
      exact_duplicate         identical to an earlier row of the same delivery
      missing_transaction_id / missing_customer_id / missing_merchant_id / missing_timestamp
      unparseable_timestamp   a timestamp was delivered but is not one
      missing_amount
      non_finite_amount       inf, -inf or nan
      unparseable_amount      not a number, or outside decimal(18, 2)
      non_positive_amount     zero or negative ($0 authorisations included: see README)
      unknown_currency        not in seed accepted_currencies
      unknown_transaction_type / unknown_merchant_category   not in their seeds (or null)
      implausible_timestamp   before var min_transaction_date
      future_timestamp        after var as_of_date
      unparseable_is_fraud    a label was delivered but is not a boolean
      orphan_customer_id / orphan_merchant_id   key not in silver.customers / bronze.merchants_raw
      unknown_customer_country  the customer's country is not in seed countries
      conflicting_duplicate   otherwise valid, but an earlier valid row of the same delivery has
                              the same transaction_id with different content
-#}

{{ validate_rule_vars() }}

with

transactions as (

    select * from {{ ref('transactions_raw') }}
    {% if is_incremental() %}
        where loaded_at > {{ max_loaded_at(this) }}
    {% endif %}

),

customers as (

    select
        customer_id,
        country
    from {{ ref('customers') }}

),

merchants as (

    select distinct merchant_id from {{ ref('merchants_raw') }}

),

currencies as (

    select distinct currency_code from {{ ref('accepted_currencies') }}

),

transaction_types as (

    select distinct transaction_type from {{ ref('transaction_types') }}

),

merchant_categories as (

    select distinct merchant_category from {{ ref('merchant_categories') }}

),

countries as (

    select distinct country_code from {{ ref('countries') }}

),

with_copy_number as (

    select
        transactions.*,
        row_number() over (
            partition by
                transactions.source_file_name,
                transactions.loaded_at,
                transactions.transaction_id,
                transactions.customer_id,
                transactions.merchant_id,
                transactions.transaction_at_as_delivered,
                transactions.amount_as_delivered,
                transactions.currency,
                transactions.transaction_type,
                transactions.merchant_category,
                transactions.device_id,
                transactions.ip_address,
                transactions.is_fraud_as_delivered
            order by transactions.source_row_number
        ) as copy_number
    from transactions

),

with_references as (

    select
        with_copy_number.*,
        customers.country as customer_country,
        customers.customer_id is not null as has_known_customer,
        merchants.merchant_id is not null as has_known_merchant,
        currencies.currency_code is not null as has_known_currency,
        transaction_types.transaction_type is not null as has_known_transaction_type,
        merchant_categories.merchant_category is not null as has_known_merchant_category,
        countries.country_code is not null as has_known_customer_country,
        lower(trim(with_copy_number.amount_as_delivered))
        in ('inf', '+inf', '-inf', 'infinity', '+infinity', '-infinity', 'nan', '+nan', '-nan')
            as is_non_finite_amount
    from with_copy_number
    left join customers
        on with_copy_number.customer_id = customers.customer_id
    left join merchants
        on with_copy_number.merchant_id = merchants.merchant_id
    left join currencies
        on with_copy_number.currency = currencies.currency_code
    left join transaction_types
        on with_copy_number.transaction_type = transaction_types.transaction_type
    left join merchant_categories
        on with_copy_number.merchant_category = merchant_categories.merchant_category
    left join countries
        on customers.country = countries.country_code

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
                || case when transaction_at_as_delivered is null then ', missing_timestamp' else '' end
                || case
                    when transaction_at_as_delivered is not null and transaction_at is null
                        then ', unparseable_timestamp'
                    else ''
                end
                || case when amount_as_delivered is null then ', missing_amount' else '' end
                || case when is_non_finite_amount then ', non_finite_amount' else '' end
                || case
                    when amount_as_delivered is not null and not is_non_finite_amount and amount is null
                        then ', unparseable_amount'
                    else ''
                end
                || case when amount <= 0 then ', non_positive_amount' else '' end
                || case when not has_known_currency then ', unknown_currency' else '' end
                || case when not has_known_transaction_type then ', unknown_transaction_type' else '' end
                || case when not has_known_merchant_category then ', unknown_merchant_category' else '' end
                || case
                    when
                        transaction_at
                        < cast('{{ iso_date_var("min_transaction_date") }}' as {{ dbt.type_timestamp() }})
                        then ', implausible_timestamp'
                    else ''
                end
                || case
                    when transaction_at > cast('{{ iso_date_var("as_of_date") }}' as {{ dbt.type_timestamp() }})
                        then ', future_timestamp'
                    else ''
                end
                || case
                    when is_fraud_as_delivered is not null and is_fraud is null
                        then ', unparseable_is_fraud'
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
                || case
                    when has_known_customer and not has_known_customer_country
                        then ', unknown_customer_country'
                    else ''
                end
        end as failed_checks
    from with_references

),

with_conflicts as (

    select
        *,
        {{ with_duplicate_reason(
            'conflicting_duplicate',
            partition_by=['source_file_name', 'loaded_at', 'transaction_id'],
            order_by=['source_row_number'],
        ) }} as all_failed_checks
    from checked

),

final as (

    select
        transaction_id,
        customer_id,
        merchant_id,
        transaction_at,
        transaction_at_as_delivered,
        amount,
        amount_as_delivered,
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
        loaded_at,
        {{ rejection_reasons('all_failed_checks') }} as rejection_reasons
    from with_conflicts

)

select * from final
