{#-
    One row per customer from the latest customer snapshot. Emails are normalised (trimmed,
    lower case). A customer delivered twice keeps its first row; bronze tests make a null or
    duplicated key fail loudly instead of disappearing here.
-#}

with

customers as (

    select * from {{ ref('customers_raw') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by customer_id
            order by source_file_name, source_row_number
        ) as version_rank
    from customers
    where customer_id is not null

),

final as (

    select
        customer_id,
        first_name,
        last_name,
        lower(trim(email)) as email,
        phone,
        city,
        state,
        country,
        created_date,
        loaded_at
    from ranked
    where version_rank = 1

)

select * from final
