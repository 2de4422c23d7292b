{{ config(pre_hook="{{ assert_source_not_empty(source('raw', 'merchants')) }}") }}

{#- The landing path is a validated setting (the source's read_parquet splices it). -#}
{%- do raw_data_path() %}

with

source_rows as (

    select * from {{ source('raw', 'merchants') }}

),

final as (

    select
        cast(merchant_id as {{ dbt.type_string() }}) as merchant_id,
        cast(merchant_name as {{ dbt.type_string() }}) as merchant_name,
        cast(merchant_category as {{ dbt.type_string() }}) as merchant_category,
        cast(country as {{ dbt.type_string() }}) as country,
        {{ source_lineage_columns() }},
        {{ load_timestamp() }} as loaded_at
    from source_rows

)

select * from final
