{#-
    Load lineage for bronze: which delivered file a row came from and its position in it, so every
    raw row can be followed into silver (cleaned, rejected or superseded) and nothing is dropped
    unseen.

    DuckDB reads the landing Parquet files itself (read_parquet(..., filename, file_row_number)).
    On a warehouse the landing table is loaded by an ingestion tool that records the file
    (COPY INTO's METADATA$FILENAME, Auto Loader's _metadata.file_path): name that column with
    var `raw_file_name_column` (default `_source_file_name`) and the row position with
    `raw_file_row_column` (default `_source_file_row_number`).
-#}
{% macro source_lineage_columns() -%}
    {{ return(adapter.dispatch('source_lineage_columns', 'fraud_detection')()) }}
{%- endmacro %}

{% macro default__source_lineage_columns() -%}
    cast({{ identifier_var('raw_file_name_column', '_source_file_name') }} as {{ dbt.type_string() }}) as source_file_name,
    cast({{ identifier_var('raw_file_row_column', '_source_file_row_number') }} as {{ dbt.type_bigint() }}) as source_row_number
{%- endmacro %}

{% macro duckdb__source_lineage_columns() -%}
    parse_filename(filename) as source_file_name,
    cast(file_row_number as bigint) as source_row_number
{%- endmacro %}

{#- The same instant for every row of one dbt invocation: the load batch. -#}
{% macro load_timestamp() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#-
    The newest load batch already in an incremental model (`loaded_at > {{ max_loaded_at(this) }}`
    selects the batches not yet processed). An existing but empty table answers the epoch, not
    null: `loaded_at > null` would silently skip every new row.
-#}
{% macro max_loaded_at(relation) -%}
    (select coalesce(max(loaded_at), cast('1970-01-01 00:00:00' as {{ dbt.type_timestamp() }})) from {{ relation }})
{%- endmacro %}
