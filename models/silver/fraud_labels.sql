{#-
    One row per reported transaction: the label and the instant it became known.
    var label_source = fraud_reports (default): the earliest valid report of each transaction.
      A report dated before its transaction (clock skew in the reporting system) is kept, flagged
      is_reported_before_transaction, and known at the transaction's own time: nothing can be
      known about a transaction before it happens, so label_known_at =
      greatest(reported_at, transaction_at).
    var label_source = label_delay (data without a report feed): every transaction with
      is_fraud, known var label_delay_days after it happened.
    Label-derived features and training use label_known_at, never transaction_at.
-#}

with

transactions as (

    select * from {{ ref('transactions_cleaned') }}

),

{% if label_source() == 'fraud_reports' %}

reports as (

    select * from {{ ref('fraud_reports_validated') }}
    where rejection_reasons is null

),

report_counts as (

    select
        transaction_id,
        count(*) as report_count
    from {{ ref('fraud_reports_validated') }}
    where
        rejection_reasons is null
        or rejection_reasons = 'duplicate_report'
    group by transaction_id

),

labels as (

    select
        reports.transaction_id,
        reports.reported_at,
        reports.report_type,
        report_counts.report_count
    from reports
    inner join report_counts
        on reports.transaction_id = report_counts.transaction_id

),

{% else %}

    labels as (

        select
            transaction_id,
            transaction_at + {{ interval_literal(label_delay_seconds(), 'second') }} as reported_at,
            'label_delay' as report_type,
            cast(1 as {{ dbt.type_bigint() }}) as report_count
        from transactions
        where is_fraud

    ),

{% endif %}

final as (

    select
        labels.transaction_id,
        transactions.customer_id,
        transactions.merchant_id,
        transactions.transaction_at,
        cast(labels.reported_at as {{ dbt.type_timestamp() }}) as reported_at,
        labels.report_type,
        labels.report_count,
        labels.reported_at < transactions.transaction_at as is_reported_before_transaction,
        cast(greatest(labels.reported_at, transactions.transaction_at) as {{ dbt.type_timestamp() }})
            as label_known_at
    from labels
    inner join transactions
        on labels.transaction_id = transactions.transaction_id

)

select * from final
