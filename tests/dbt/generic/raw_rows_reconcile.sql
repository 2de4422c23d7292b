{#-
    Nothing is silently dropped between bronze and silver. Every raw row must be exactly one of:
      rejected    its (file, row, load) is in the rejected model;
      kept        its (file, row, load) is the version in the cleaned model (`model`);
      superseded  its transaction_id is in the cleaned model with a version from a later
                  delivery: a later load, or a later file of the same load (a same-name file
                  redelivered with new content is a later load).
    Fails with one row per raw row that is none of these (lost) or more than one (double
    counted), and per cleaned/rejected row whose (file, row, load) does not exist in bronze.
-#}
{% test raw_rows_reconcile(model, raw_model, rejected_model) %}

with

raw_rows as (

    select transaction_id, source_file_name, source_row_number, loaded_at from {{ raw_model }}

),

cleaned as (

    select transaction_id, source_file_name, source_row_number, loaded_at from {{ model }}

),

rejected as (

    select source_file_name, source_row_number, loaded_at from {{ rejected_model }}

),

classified as (

    select
        raw_rows.source_file_name,
        raw_rows.source_row_number,
        case when rejected.source_row_number is not null then 1 else 0 end as is_rejected,
        case when kept.source_row_number is not null then 1 else 0 end as is_kept,
        case
            when
                rejected.source_row_number is null
                and (
                    newer.loaded_at > raw_rows.loaded_at
                    or (
                        newer.loaded_at = raw_rows.loaded_at
                        and newer.source_file_name > raw_rows.source_file_name
                    )
                )
                then 1
            else 0
        end as is_superseded
    from raw_rows
    left join rejected
        on
            raw_rows.source_file_name = rejected.source_file_name
            and raw_rows.source_row_number = rejected.source_row_number
            and raw_rows.loaded_at = rejected.loaded_at
    left join cleaned as kept
        on
            raw_rows.source_file_name = kept.source_file_name
            and raw_rows.source_row_number = kept.source_row_number
            and raw_rows.loaded_at = kept.loaded_at
    left join cleaned as newer
        on raw_rows.transaction_id = newer.transaction_id

),

unaccounted_raw_rows as (

    select
        source_file_name,
        source_row_number,
        case
            when is_rejected + is_kept + is_superseded = 0 then 'raw row lost'
            else 'raw row counted twice'
        end as problem
    from classified
    where is_rejected + is_kept + is_superseded != 1

),

orphan_silver_rows as (

    select
        silver_rows.source_file_name,
        silver_rows.source_row_number,
        'silver row not in bronze' as problem
    from (
        select source_file_name, source_row_number, loaded_at from cleaned
        union all
        select source_file_name, source_row_number, loaded_at from rejected
    ) as silver_rows
    left join raw_rows
        on
            silver_rows.source_file_name = raw_rows.source_file_name
            and silver_rows.source_row_number = raw_rows.source_row_number
            and silver_rows.loaded_at = raw_rows.loaded_at
    where raw_rows.source_row_number is null

),

final as (

    select * from unaccounted_raw_rows
    union all
    select * from orphan_silver_rows

)

select * from final

{% endtest %}
