{#-
    Local Apache Spark (target spark_local, tests only: tests/python/end_to_end/test_engines.py).

    spark_landing_views plays the ingestion tool: for each raw schema it is given, it creates
    views raw.transactions / customers / merchants over a landing folder of Parquet files
    (<folder>/<table>/*.parquet), with the lineage columns bronze expects on a warehouse
    (_source_file_name, _source_file_row_number: see source_lineage.sql), read from Spark's
    file metadata. A view reads the folder at query time, so a batch file added later is seen
    by the next run, as in production.
        dbt run-operation spark_landing_views --target spark_local --args '{landings: {raw: /abs/folder}}'
    (`tables` defaults to transactions, customers, merchants; the test passes every table
    folder of the fixture.)

    spark_export_relations copies every SQL model's relation (tables and views) of the given
    schema prefixes into Parquet folders <directory>/<schema>.<name>, so the test can compare
    them with DuckDB's without starting a JVM of its own.
-#}
{% macro spark_check_setting(name, value, pattern) -%}
    {%- if not modules.re.fullmatch(pattern, value | string) -%}
        {{ exceptions.raise_compiler_error(
            "Invalid " ~ name ~ " " ~ (value | string | tojson) ~ ": must match " ~ pattern) }}
    {%- endif -%}
    {{ return(value | string) }}
{%- endmacro %}

{% macro spark_landing_views(landings, tables=['transactions', 'customers', 'merchants']) -%}
    {%- if target.type != 'spark' -%}
        {{ exceptions.raise_compiler_error("spark_landing_views is for dbt-spark targets only, not " ~ target.type) }}
    {%- endif -%}
    {%- for raw_schema, folder in landings.items() -%}
        {%- set raw_schema = spark_check_setting('raw schema', raw_schema, '[a-z_][a-z0-9_]*') -%}
        {%- set folder = spark_check_setting('landing folder', folder, '/[A-Za-z0-9_./+-]+') -%}
        {%- do run_query('create schema if not exists ' ~ raw_schema) -%}
        {%- for table in tables -%}
            {%- set table = spark_check_setting('landing table', table, '[a-z_][a-z0-9_]*') -%}
            {%- do run_query(
                'create or replace view ' ~ raw_schema ~ '.' ~ table ~ ' as select *,'
                ~ ' _metadata.file_name as _source_file_name,'
                ~ ' _metadata.row_index as _source_file_row_number'
                ~ ' from parquet.`' ~ folder ~ '/' ~ table ~ '`') -%}
            {%- do log('landing view ' ~ raw_schema ~ '.' ~ table ~ ' -> ' ~ folder ~ '/' ~ table, info=true) -%}
        {%- endfor -%}
    {%- endfor -%}
{%- endmacro %}

{% macro spark_export_relations(directory, schema_prefixes) -%}
    {%- set directory = spark_check_setting('export directory', directory, '/[A-Za-z0-9_./+-]+') -%}
    {%- for node in graph.nodes.values()
            if node.resource_type == 'model' and node.config.enabled and node.language == 'sql'
            and node.config.materialized != 'ephemeral' -%}
        {%- for prefix in schema_prefixes -%}
            {%- set schema = spark_check_setting('schema prefix', prefix, '[a-z_]*') ~ node.schema -%}
            {%- set relation = adapter.get_relation(database=none, schema=schema, identifier=node.alias) -%}
            {%- if relation is not none -%}
                {%- do run_query(
                    "insert overwrite directory '" ~ directory ~ '/' ~ schema ~ '.' ~ node.alias
                    ~ "' using parquet select * from " ~ relation) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
{%- endmacro %}

{#-
    dbt-spark persists contract constraints (`alter table ... set not null`) unless the model's
    file_format is set and is not delta; the table materialisation writes parquet by default, so
    the statement fails on local parquet tables. Here they are persisted only for delta (the
    contract's column names and types are still checked). dbt-databricks has its own
    persist_constraints and never reaches this macro.
-#}
{% macro spark__persist_constraints(relation, model) -%}
    {%- if config.get('contract').enforced and config.get('file_format', 'parquet') == 'delta' -%}
        {%- do alter_table_add_constraints(relation, model.constraints) -%}
        {%- do alter_column_set_constraints(relation, model.columns) -%}
    {%- endif -%}
{%- endmacro %}
