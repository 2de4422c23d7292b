{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ assert_source_not_empty(source('raw', 'fraud_reports')) if label_source() == 'fraud_reports' }}",
    )
}}

{#-
    Exception to the folder's `table`, as for transactions_raw: a landing file of the label feed
    is loaded once, appended by file name. With var label_source = label_delay (data without a
    report feed) the source is not read and this table stays empty: silver derives the labels
    from is_fraud and var label_delay_days instead.
-#}

with

{% if label_source() == 'fraud_reports' %}

source_rows as (

    select * from {{ source('raw', 'fraud_reports') }}

),

typed as (

    select
        cast(transaction_id as {{ dbt.type_string() }}) as transaction_id,
        {{ try_cast_or_null('reported_at', dbt.type_timestamp()) }} as reported_at,
        cast(report_type as {{ dbt.type_string() }}) as report_type,
        {{ source_lineage_columns() }},
        {{ load_timestamp() }} as loaded_at
    from source_rows

),

{% else %}

    typed as (

        select
            cast(null as {{ dbt.type_string() }}) as transaction_id,
            cast(null as {{ dbt.type_timestamp() }}) as reported_at,
            cast(null as {{ dbt.type_string() }}) as report_type,
            cast(null as {{ dbt.type_string() }}) as source_file_name,
            cast(null as {{ dbt.type_bigint() }}) as source_row_number,
            {{ load_timestamp() }} as loaded_at
        where 1 = 0

    ),

{% endif %}

final as (

    select * from typed
    {% if is_incremental() %}
        where source_file_name not in (select distinct source_file_name from {{ this }})
    {% endif %}

)

select * from final
