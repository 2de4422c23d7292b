{#- mask_email, the warehouse function, on edge cases: one row per input whose output differs
    from the expected one. -#}
-- depends_on: {{ ref('customers_masked') }}

with

cases as (

    select
        'john.doe@example.com' as input_email,
        'jo***@example.com' as expected_email
    union all
    select
        'a@example.com' as input_email,
        'a***@example.com' as expected_email
    union all
    select
        'ab@example.com' as input_email,
        'ab***@example.com' as expected_email
    union all
    select
        '@example.com' as input_email,
        '***@example.com' as expected_email
    union all
    select
        'no-at-sign.example.com' as input_email,
        '***' as expected_email
    union all
    select
        'first@second@example.com' as input_email,
        'fi***@second@example.com' as expected_email
    union all
    select
        '' as input_email,
        '***' as expected_email

),

masked as (

    select
        input_email,
        expected_email,
        {{ mask_email('input_email') }} as actual_email
    from cases

),

null_case as (

    select
        'null' as input_email,
        'null' as expected_email,
        coalesce({{ mask_email('cast(null as ' ~ dbt.type_string() ~ ')') }}, 'null') as actual_email

),

final as (

    select * from masked
    where actual_email is null or actual_email != expected_email
    union all
    select * from null_case
    where actual_email != expected_email

)

select * from final
