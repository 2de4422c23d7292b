{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        post_hook="{{ report_new_deliveries(this) }}",
    )
}}

{#-
    One row per delivery of a transactions landing file, 0-row files included: name, path, size,
    content hash, rows in the file, rows loaded into bronze.transactions_raw, when, and status:
      loaded       first delivery of this file name
      redelivered  a file of this name was loaded before with other content: loaded again as a new
                   delivery; its rows supersede the earlier versions by transaction_id in silver
      empty        the file holds no rows (logged, nothing to load)
    A file whose name and content hash match the latest logged delivery is not logged again (a
    rerun changes nothing). Built after transactions_raw: a failed load logs nothing.
-#}

with

landing_files as (

    {{ landing_files('transactions') }}

),

loaded_rows as (

    select
        source_file_name,
        source_file_hash,
        loaded_at,
        count(*) as rows_loaded
    from {{ ref('transactions_raw') }}
    group by source_file_name, source_file_hash, loaded_at

),

latest_loaded_rows as (

    select
        source_file_name,
        source_file_hash,
        loaded_at,
        rows_loaded,
        row_number() over (
            partition by source_file_name, source_file_hash order by loaded_at desc
        ) as recency
    from loaded_rows

),

logged as (

    -- the deliveries already logged (none on the first build)
    select
        file_name,
        content_hash,
        row_number() over (partition by file_name order by loaded_at desc) as recency
    {% if is_incremental() %}
    from {{ this }}
    {% else %}
    from (
        select
            file_name,
            content_hash,
            {{ load_timestamp() }} as loaded_at
        from landing_files
        where 1 = 0
    ) as nothing_logged_yet
    {% endif %}

),

new_deliveries as (

    select
        landing_files.*,
        max(case when logged.file_name is not null then 1 else 0 end)
            over (partition by landing_files.file_name) as was_logged_before
    from landing_files
    left join logged
        on
            landing_files.file_name = logged.file_name
            and logged.recency = 1
    where
        logged.file_name is null
        or coalesce(logged.content_hash, '') != coalesce(landing_files.content_hash, '')

),

final as (

    select
        new_deliveries.file_name,
        new_deliveries.file_path,
        new_deliveries.file_size_bytes,
        new_deliveries.content_hash,
        new_deliveries.row_count,
        cast(coalesce(latest_loaded_rows.rows_loaded, 0) as {{ dbt.type_bigint() }}) as rows_loaded,
        coalesce(latest_loaded_rows.loaded_at, {{ load_timestamp() }}) as loaded_at,
        case
            when new_deliveries.row_count = 0 then 'empty'
            when new_deliveries.was_logged_before = 1 then 'redelivered'
            else 'loaded'
        end as status
    from new_deliveries
    left join latest_loaded_rows
        on
            new_deliveries.file_name = latest_loaded_rows.source_file_name
            and coalesce(new_deliveries.content_hash, '') = coalesce(latest_loaded_rows.source_file_hash, '')
            and latest_loaded_rows.recency = 1

)

select * from final
