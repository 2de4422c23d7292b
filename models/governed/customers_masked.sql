{#- Customers for readers without PII access: email masked by the warehouse function
    mask_email (jo***@example.com); names and phone left out. -#}

with

customers as (

    select * from {{ ref('customers') }}

),

final as (

    select
        customer_id,
        {{ mask_email('email') }} as email,
        city,
        state,
        country,
        created_date
    from customers

)

select * from final
