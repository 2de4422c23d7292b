{#-
    The access matrix as dbt applies it on the current target: one row per relation, privilege
    and role, from each model's (seed's) `grants` config (personas per folder in dbt_project.yml)
    expanded by access_grants (macros/governance/access.sql) with the role_* vars. For review:
        dbt compile --target databricks --select access_matrix --no-populate-cache --no-introspect \
          --vars '{offline_compile: true}'
    or `dbt show --select access_matrix` on DuckDB. tests/python/test_offline_compile.py reads it.
-#}
{%- set rows = access_matrix_rows() if execute else [] %}

with

access_matrix as (

    {%- if rows %}

    select
        access_rows.relation_name,
        access_rows.relation_type,
        access_rows.privilege,
        access_rows.grantee
    from (
        values
        {%- for row in rows %}
        ('{{ row | join("', '") }}'){{ "," if not loop.last }}
        {%- endfor %}
    ) as access_rows (relation_name, relation_type, privilege, grantee)

    {%- else %}

    select
        cast(null as varchar) as relation_name,
        cast(null as varchar) as relation_type,
        cast(null as varchar) as privilege,
        cast(null as varchar) as grantee
    where false

    {%- endif %}

),

final as (

    select * from access_matrix

)

select * from final
