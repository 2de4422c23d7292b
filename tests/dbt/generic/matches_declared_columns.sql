{#-
    Model-level generic test: a contract for a model dbt cannot enforce one on (a Python model).
    The built relation must have exactly the columns of the model's YAML, each with its declared
    data_type, compared the way dbt compares an enforced contract (assert_columns_equivalent):
    the declared types go through the warehouse (an empty query casting null to each one,
    get_empty_schema_sql) and both sides are formatted by the adapter (format_columns), so
    `varchar` matches DuckDB's VARCHAR and Snowflake's VARCHAR(16777216). Fails with one row per
    difference: a column missing, not declared, or of another type; or a declared column with no
    data_type.
    Usage (in the model's YAML):
        data_tests:
          - matches_declared_columns
-#}
{% test matches_declared_columns(model) %}

{%- set differences = [] -%}
{#- Only when the test runs: `dbt compile` (offline too) and `docs generate` render no query. -#}
{%- if execute and flags.WHICH in ['build', 'test', 'retry'] -%}
    {%- set nodes = graph.nodes.values()
        | selectattr('resource_type', 'equalto', 'model')
        | selectattr('schema', 'equalto', model.schema)
        | selectattr('alias', 'equalto', model.identifier)
        | list -%}
    {%- if nodes | length != 1 -%}
        {{ exceptions.raise_compiler_error(
            "matches_declared_columns: no single model builds " ~ model ~ " (found "
            ~ (nodes | map(attribute='unique_id') | list | tojson) ~ ")") }}
    {%- endif -%}
    {%- set declared = nodes[0].columns -%}
    {%- for name, column in declared.items() if not column.data_type -%}
        {%- do differences.append([name, 'no data_type in the YAML', '']) -%}
    {%- endfor -%}
    {%- if not differences -%}
        {%- set expected = format_columns(get_column_schema_from_query(get_empty_schema_sql(declared))) -%}
        {%- set actual = format_columns(get_column_schema_from_query('select * from ' ~ model)) -%}
        {%- set expected_by_name = {} -%}
        {%- for column in expected -%}
            {%- do expected_by_name.update({column['name'] | lower: column}) -%}
        {%- endfor -%}
        {%- set actual_by_name = {} -%}
        {%- for column in actual -%}
            {%- do actual_by_name.update({column['name'] | lower: column}) -%}
        {%- endfor -%}
        {%- for name, column in expected_by_name.items() -%}
            {%- if name not in actual_by_name -%}
                {%- do differences.append([name, column['data_type'], 'missing']) -%}
            {%- elif actual_by_name[name]['formatted'] | lower != column['formatted'] | lower -%}
                {%- do differences.append([name, column['data_type'], actual_by_name[name]['data_type']]) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- for name, column in actual_by_name.items() if name not in expected_by_name -%}
            {%- do differences.append([name, 'not declared', column['data_type']]) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endif %}

with

differences as (

    {%- for difference in differences %}

    select
        '{{ difference[0] | replace("'", "''") }}' as column_name,
        '{{ difference[1] | replace("'", "''") }}' as declared,
        '{{ difference[2] | replace("'", "''") }}' as actual
    {{ "union all" if not loop.last }}

    {%- else %}

    select
        cast(null as {{ dbt.type_string() }}) as column_name,
        cast(null as {{ dbt.type_string() }}) as declared,
        cast(null as {{ dbt.type_string() }}) as actual
    from (select 1 as one) as no_rows
    where no_rows.one = 0

    {%- endfor %}

),

final as (

    select * from differences

)

select * from final

{% endtest %}
