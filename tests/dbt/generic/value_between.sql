{#-
    Generic test: every non-null value of the column lies in [min_value, max_value] (bounds
    inclusive; either bound may be omitted). Fails with one row per offending value.
    Usage:
        data_tests:
          - value_between:
              arguments: {min_value: 0, max_value: 1}
-#}
{% test value_between(model, column_name, min_value=none, max_value=none) %}

with

checked as (

    select {{ column_name }} as value
    from {{ model }}
    where {{ column_name }} is not null

),

final as (

    select * from checked
    where
        false
        {%- if min_value is not none %}
        or value < {{ min_value }}
        {%- endif %}
        {%- if max_value is not none %}
        or value > {{ max_value }}
        {%- endif %}

)

select * from final

{% endtest %}
