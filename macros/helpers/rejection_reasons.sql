{#-
    The tail every validated model shares (silver.transactions_validated,
    silver.fraud_reports_validated). A row's checks are a list `', reason_a, reason_b'` (the
    empty string when the row passed every per-row check); then:

    with_duplicate_reason(reason, partition_by, order_by): the list with `, <reason>` appended
    to every row that passed its checks but is not the first passing row of its partition (by
    order_by). The failing rows never hide a passing one: they are numbered apart.
        select *, {{ with_duplicate_reason('duplicate_report', ['transaction_id'], ['reported_at']) }}
            as all_failed_checks
        from checked

    rejection_reasons(checks): the list without its leading ', '; null when the row passed.
-#}
{% macro with_duplicate_reason(reason, partition_by, order_by, checks='failed_checks') -%}
    {{ checks }}
    || case
        when
            {{ checks }} = ''
            and row_number() over (
                partition by {{ partition_by | join(', ') }}, ({{ checks }} = '')
                order by {{ order_by | join(', ') }}
            ) > 1
            then ', {{ reason }}'
        else ''
    end
{%- endmacro %}

{% macro rejection_reasons(checks='all_failed_checks') -%}
    nullif(substr({{ checks }}, 3), '')
{%- endmacro %}
