{#- Audit log of every promotion decision. dbt owns the table (contract, docs, tests, grants);
    it starts empty and fraud-promote (ml/promotion) appends one row per decision. A dbt run
    adds no rows, and full_refresh: false keeps --full-refresh from rebuilding it from empty.
    `precision` is a keyword but the name people query (noqa RF04). -#}

with

final as (

    select
        cast(null as {{ dbt.type_string() }}) as promotion_id,
        cast(null as {{ dbt.type_timestamp() }}) as decided_at,
        cast(null as {{ dbt.type_string() }}) as actor,
        cast(null as {{ dbt.type_string() }}) as model_name,
        cast(null as {{ dbt.type_bigint() }}) as candidate_version,
        cast(null as {{ dbt.type_bigint() }}) as previous_champion_version,
        cast(null as {{ dbt.type_bigint() }}) as new_champion_version,
        cast(null as {{ dbt.type_string() }}) as decision,
        cast(null as {{ dbt.type_string() }}) as gates_json,
        cast(null as double) as precision,  -- noqa: RF04
        cast(null as double) as precision_threshold,
        cast(null as double) as recall,
        cast(null as double) as recall_threshold,
        cast(null as double) as f1,
        cast(null as double) as f1_threshold,
        cast(null as {{ dbt.type_string() }}) as gate_config_version,
        cast(null as {{ dbt.type_string() }}) as git_commit,
        cast(null as {{ dbt.type_string() }}) as notes
    where 1 = 0

)

select * from final
