{#-
    Landing files as deliveries with identity (read by bronze.transactions_raw and bronze.load_log).

    landing_files(table_name): one row per landing file of source raw.<table_name>:
      file_name, file_path, file_size_bytes, content_hash (md5 of the file's bytes), row_count.
      DuckDB reads the files themselves: read_blob (size, content → md5) and
      parquet_file_metadata (row count from the footer), on the same glob as the source.
      On a warehouse the landing table is loaded by an ingestion tool that owns file identity
      (COPY INTO's load history, Auto Loader's checkpoint) and records only the file name: the
      inventory is derived from the landed rows, with no size and no hash, so a file is a
      delivery by name there.

    landing_file_path_column(): the source column that joins a landed row to its file_path.

    assert_landing_files_readable(table_name, required_columns): pre-hook; on DuckDB every
      landing file must be a readable Parquet file (DuckDB's error names the file) holding every
      required column, else the build fails naming the file and the missing columns, before
      anything is written. On a warehouse the landing table has one schema: a missing column
      fails the model's compile with its name.
-#}

{% macro landing_glob(table_name) -%}
    {{ return(raw_data_path() ~ '/' ~ table_name ~ '/*.parquet') }}
{%- endmacro %}

{% macro landing_files(table_name) -%}
    {{ return(adapter.dispatch('landing_files', 'fraud_detection')(table_name)) }}
{%- endmacro %}

{% macro default__landing_files(table_name) -%}
    {%- set file_column = identifier_var('raw_file_name_column', '_source_file_name') -%}
    select
        cast({{ file_column }} as {{ dbt.type_string() }}) as file_name,
        cast({{ file_column }} as {{ dbt.type_string() }}) as file_path,
        cast(null as {{ dbt.type_bigint() }}) as file_size_bytes,
        cast(null as {{ dbt.type_string() }}) as content_hash,
        cast(count(*) as {{ dbt.type_bigint() }}) as row_count
    from {{ source('raw', table_name) }}
    group by {{ file_column }}
{%- endmacro %}

{% macro duckdb__landing_files(table_name) -%}
    select
        parse_filename(blobs.filename) as file_name,
        blobs.filename as file_path,
        cast(blobs.size as bigint) as file_size_bytes,
        md5(blobs.content) as content_hash,
        cast(coalesce(footers.num_rows, 0) as bigint) as row_count
    from read_blob('{{ landing_glob(table_name) }}') as blobs
    left join parquet_file_metadata('{{ landing_glob(table_name) }}') as footers
        on blobs.filename = footers.file_name
{%- endmacro %}

{% macro landing_file_path_column() -%}
    {{ return(adapter.dispatch('landing_file_path_column', 'fraud_detection')()) }}
{%- endmacro %}

{% macro default__landing_file_path_column() -%}
    {{ identifier_var('raw_file_name_column', '_source_file_name') }}
{%- endmacro %}

{% macro duckdb__landing_file_path_column() -%}
    filename
{%- endmacro %}

{% macro assert_landing_files_readable(table_name, required_columns) -%}
    {{ return(adapter.dispatch('assert_landing_files_readable', 'fraud_detection')(table_name, required_columns)) }}
{%- endmacro %}

{% macro default__assert_landing_files_readable(table_name, required_columns) -%}

{%- endmacro %}

{% macro duckdb__assert_landing_files_readable(table_name, required_columns) -%}
    {%- if execute and not var('offline_compile', false) -%}
        {%- set glob = landing_glob(table_name) -%}
        {%- set query -%}
            with
            present as (
                select file_name, lower(name) as column_name
                from parquet_schema('{{ glob }}')
            ),
            files as (
                select distinct file_name from present
            ),
            required as (
                select unnest([
                    {%- for column in required_columns -%}
                        '{{ column }}'{{ ', ' if not loop.last }}
                    {%- endfor -%}
                ]) as column_name
            )
            select files.file_name, string_agg(required.column_name, ', ' order by required.column_name)
            from files
            cross join required
            left join present
                on files.file_name = present.file_name and required.column_name = present.column_name
            where present.column_name is null
            group by files.file_name
            order by files.file_name
        {%- endset -%}
        {%- set missing = run_query(query) -%}
        {%- if missing.rows | length > 0 -%}
            {%- set problems = [] -%}
            {%- for row in missing.rows -%}
                {%- do problems.append("landing file " ~ row[0] ~ " lacks required column(s) " ~ row[1]) -%}
            {%- endfor -%}
            {{ exceptions.raise_compiler_error(
                "Source raw." ~ table_name ~ ": " ~ (problems | join('; '))
                ~ ". Nothing was loaded: fix or remove the file and rerun.") }}
        {%- endif -%}
    {%- endif -%}

{%- endmacro %}

{#- The columns every transactions landing file must hold (raw.transactions in _raw__sources.yml). -#}
{% macro transaction_source_columns() -%}
    {{ return([
        'transaction_id', 'customer_id', 'merchant_id', 'transaction_timestamp', 'amount',
        'currency', 'transaction_type', 'merchant_category', 'device_id', 'ip_address', 'is_fraud',
    ]) }}
{%- endmacro %}

{#- load_log post-hook: name every delivery logged by this run in dbt's output (a redelivered
    file is announced, never absorbed in silence). -#}
{% macro report_new_deliveries(relation) -%}
    {%- if execute and not var('offline_compile', false) -%}
        {%- set query -%}
            select file_name, status, row_count from {{ relation }}
            where loaded_at = {{ load_timestamp() }}
            order by file_name
        {%- endset -%}
        {%- for row in run_query(query).rows -%}
            {%- do log("load_log: " ~ row[0] ~ " " ~ row[1] ~ " (" ~ row[2] ~ " rows)", info=True) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
