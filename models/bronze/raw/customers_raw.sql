{{ config(pre_hook="{{ assert_source_not_empty(source('raw', 'customers')) }}") }}

{#- The landing path is a validated setting (the source's read_parquet splices it). -#}
{%- do raw_data_path() %}

with

source_rows as (

    select * from {{ source('raw', 'customers') }}

),

final as (

    select
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(first_name as {{ dbt.type_string() }}) as first_name,
        cast(last_name as {{ dbt.type_string() }}) as last_name,
        cast(email as {{ dbt.type_string() }}) as email,
        cast(phone as {{ dbt.type_string() }}) as phone,
        cast(city as {{ dbt.type_string() }}) as city,
        cast(state as {{ dbt.type_string() }}) as state,
        cast(country as {{ dbt.type_string() }}) as country,
        {{ try_cast_or_null('created_date', 'date') }} as created_date,
        {{ source_lineage_columns() }},
        {{ load_timestamp() }} as loaded_at
    from source_rows

)

select * from final
