{#-
    Every bronze fraud report with the reasons it fails validation (null when it passes); the one
    place the label rules live (fraud_labels and fraud_reports_rejected both read it). A table,
    rebuilt on each run: the feed is small (about one report per fraud), and a report that
    arrives before its transaction is loaded (unknown_transaction_id today) becomes valid on
    the run that loads the transaction. Checks, in order:
      missing_transaction_id / missing_reported_at / missing_report_type
      unknown_report_type     not in seed report_types (seeds/report_types.csv)
      future_reported_at      after var as_of_date
      unknown_transaction_id  no valid transaction (silver.transactions_cleaned) has this id
      duplicate_report        otherwise valid, but an earlier valid report (by reported_at, then
                              file and row) names the same transaction: the first report is the
                              label, later ones (follow-up chargebacks, re-sent rows) are kept here
-#}

with

reports as (

    select * from {{ ref('fraud_reports_raw') }}

),

transactions as (

    select transaction_id from {{ ref('transactions_cleaned') }}

),

report_types as (

    select distinct report_type from {{ ref('report_types') }}

),

with_references as (

    select
        reports.*,
        transactions.transaction_id is not null as has_known_transaction,
        report_types.report_type is not null as has_known_report_type
    from reports
    left join transactions
        on reports.transaction_id = transactions.transaction_id
    left join report_types
        on reports.report_type = report_types.report_type

),

checked as (

    select
        *,
        case when transaction_id is null then ', missing_transaction_id' else '' end
        || case when reported_at is null then ', missing_reported_at' else '' end
        || case when report_type is null then ', missing_report_type' else '' end
        || case
            when report_type is not null and not has_known_report_type
                then ', unknown_report_type'
            else ''
        end
        || case
            when reported_at > cast('{{ var("as_of_date") }}' as {{ dbt.type_timestamp() }})
                then ', future_reported_at'
            else ''
        end
        || case
            when transaction_id is not null and not has_known_transaction
                then ', unknown_transaction_id'
            else ''
        end as failed_checks
    from with_references

),

with_duplicates as (

    select
        *,
        {{ with_duplicate_reason(
            'duplicate_report',
            partition_by=['transaction_id'],
            order_by=['reported_at', 'source_file_name', 'source_row_number'],
        ) }} as all_failed_checks
    from checked

),

final as (

    select
        transaction_id,
        reported_at,
        report_type,
        source_file_name,
        source_row_number,
        loaded_at,
        {{ rejection_reasons('all_failed_checks') }} as rejection_reasons
    from with_duplicates

)

select * from final
