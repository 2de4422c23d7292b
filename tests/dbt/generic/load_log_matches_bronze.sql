{#-
    Every delivery in the load log (`model`) loaded exactly the rows its file holds, and every
    bronze row belongs to a logged delivery. Fails with one row per delivery whose row_count,
    rows_loaded and bronze row count disagree, and per bronze delivery missing from the log.
-#}
{% test load_log_matches_bronze(model, raw_model) %}

with

logged as (

    select file_name, loaded_at, row_count, rows_loaded from {{ model }}

),

bronze_deliveries as (

    select
        source_file_name,
        loaded_at,
        count(*) as bronze_rows
    from {{ raw_model }}
    group by source_file_name, loaded_at

),

compared as (

    select
        coalesce(logged.file_name, bronze_deliveries.source_file_name) as file_name,
        coalesce(logged.loaded_at, bronze_deliveries.loaded_at) as loaded_at,
        logged.row_count,
        logged.rows_loaded,
        coalesce(bronze_deliveries.bronze_rows, 0) as bronze_rows,
        logged.file_name is null as is_missing_from_log
    from logged
    full outer join bronze_deliveries
        on
            logged.file_name = bronze_deliveries.source_file_name
            and logged.loaded_at = bronze_deliveries.loaded_at

),

final as (

    select * from compared
    where
        is_missing_from_log
        or row_count != rows_loaded
        or rows_loaded != bronze_rows

)

select * from final

{% endtest %}
