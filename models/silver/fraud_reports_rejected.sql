{#- Every fraud report that is not a label, with its reason(s): nothing is dropped silently. -#}

with

validated as (

    select * from {{ ref('fraud_reports_validated') }}
    where rejection_reasons is not null

),

final as (

    select
        {{ dbt.hash(dbt.concat(["source_file_name", "'#'", "cast(source_row_number as " ~ dbt.type_string() ~ ")"])) }}
            as rejection_id,
        rejection_reasons,
        {{ dbt.split_part('rejection_reasons', "', '", 1) }} as primary_rejection_reason,
        transaction_id,
        reported_at,
        report_type,
        source_file_name,
        source_row_number,
        loaded_at
    from validated

)

select * from final
