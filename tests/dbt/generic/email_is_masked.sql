{#- Fails with every value that is not null and not in mask_email's output shape
    (`xx***@domain` with at most two visible characters, or `***`). -#}
{% test email_is_masked(model, column_name) %}

with

emails as (

    select {{ column_name }} as email from {{ model }}
    where {{ column_name }} is not null

),

final as (

    select email from emails
    where
        email != '***'
        and not (
            {{ dbt.position("'***@'", 'email') }} between 1 and 3
            and {{ dbt.length('email') }} - {{ dbt.length(dbt.replace('email', "'*'", "''")) }} = 3
        )

)

select * from final

{% endtest %}
