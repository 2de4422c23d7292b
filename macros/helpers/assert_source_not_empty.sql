{#-
    A missing landing file already fails in DuckDB with the path in the message; an empty one
    would silently build empty layers. Bronze models call this as a pre-hook so an empty source
    fails the build with a message naming the file or table.
-#}
{% macro assert_source_not_empty(source_relation) -%}
    {%- if execute and not var('offline_compile', false) -%}
        {%- set result = run_query('select count(*) from ' ~ source_relation) -%}
        {%- if result.columns[0].values()[0] == 0 -%}
            {{ exceptions.raise_compiler_error(
                "Source " ~ source_relation ~ " is empty: no rows to load. Generate data with "
                ~ "`python -m simulator --out " ~ var('raw_data_path', 'data/raw') ~ "` or point "
                ~ "var raw_data_path at a folder that holds the delivered files.") }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
