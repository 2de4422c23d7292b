{#- Pre-hook of gold.fraud_scores (entity_type 'customer') and of gold.transaction_fraud_scores
    ('transaction'), before the table is replaced or merged into: append to
    audit.model_predictions every row of the scores table still in place whose prediction_id is
    not logged yet. A build killed after scoring and before the
    audit model (a crash, an OOM kill, a cancelled job) leaves a published batch that the next
    build would otherwise overwrite unrecorded; with this hook every batch that was ever in
    gold.fraud_scores is in the audit log exactly once (the audit model itself skips ids that
    are logged, so a batch audited here is not appended again).
    prediction_id is the one of ml.scoring.prediction_log.prediction_ids: sha256 hex of
    "<scoring_batch_id>|<customer_id>|<model_name>|<model_version>" for a customer and
    "<scoring_batch_id>|transaction:<transaction_id>|<model_name>|<model_version>" for a
    transaction (a test holds them equal);
    dbt_invocation_id is the invocation that caught the batch up. No audit table yet (a first
    build killed after scoring): it is created holding that batch. The work is done with
    run_query while the hook renders (results fetched: a Python model's DuckDB connection must
    hold no unfinished result), so the hook itself renders empty and dbt runs no statement. A
    scoring that then fails rolls the catch-up back with the model: the batch is still in
    gold.fraud_scores and the next build catches it up. -#}
{% macro audit_published_scores(entity_type='customer') -%}
    {%- if entity_type not in ['customer', 'transaction'] -%}
        {{ exceptions.raise_compiler_error(
            "audit_published_scores: entity_type must be 'customer' or 'transaction', not "
            ~ entity_type) }}
    {%- endif -%}
    {%- set audit_node = graph.nodes.values()
        | selectattr('resource_type', 'equalto', 'model')
        | selectattr('name', 'equalto', 'model_predictions')
        | first
        if execute else none -%}
    {%- set scores = none -%}
    {%- if audit_node and not var('offline_compile', false) -%}
        {%- set scores = adapter.get_relation(
            database=this.database, schema=this.schema, identifier=this.identifier) -%}
    {%- endif -%}
    {%- if scores is not none -%}
        {%- set audit_target = api.Relation.create(
            database=audit_node.database, schema=audit_node.schema, identifier=audit_node.alias,
            type='table') -%}
        {%- set audit = adapter.get_relation(
            database=audit_node.database, schema=audit_node.schema, identifier=audit_node.alias) -%}
        {%- set text = dbt.type_string() -%}
        {%- if entity_type == 'customer' -%}
            {%- set entity_key = "cast(scores.customer_id as " ~ text ~ ")" -%}
            {%- set transaction_id = "cast(null as " ~ text ~ ")" -%}
            {%- set entity_id = "scores.customer_id" -%}
            {%- set is_anomaly, score = "scores.is_anomaly", "scores.anomaly_score" -%}
            {%- set model_alias, selection = "scores.model_alias", "scores.selection" -%}
        {%- else -%}
            {%- set entity_key = dbt.concat(["'transaction:'", "cast(scores.transaction_id as " ~ text ~ ")"]) -%}
            {%- set transaction_id = "scores.transaction_id" -%}
            {%- set entity_id = "scores.transaction_id" -%}
            {%- set is_anomaly, score = "scores.is_flagged", "scores.fraud_probability" -%}
            {%- set model_alias, selection = "scores.model_alias", "scores.selection" -%}
        {%- endif -%}
        {%- set key = dbt.concat([
            "cast(scores.scoring_batch_id as " ~ text ~ ")", "'|'",
            entity_key, "'|'",
            "cast(scores.model_name as " ~ text ~ ")", "'|'",
            "cast(scores.model_version as " ~ text ~ ")",
        ]) -%}
        {%- set published -%}
    select
        {{ sha256_hex(key) }} as prediction_id,
        scores.customer_id,
        scores.model_name,
        scores.model_version,
        {{ model_alias }} as model_alias,
        {{ selection }} as selection,
        scores.scored_at as prediction_timestamp,
        {{ is_anomaly }} as is_anomaly,
        scores.confidence,
        {{ score }} as score,
        scores.risk_band,
        scores.scoring_batch_id,
        cast('{{ invocation_id }}' as {{ text }}) as dbt_invocation_id,
        cast('{{ entity_type }}' as {{ text }}) as entity_type,
        cast({{ entity_id }} as {{ text }}) as entity_id,
        cast({{ transaction_id }} as {{ text }}) as transaction_id
    from {{ scores }} as scores
        {%- endset -%}
        {%- if audit is none -%}
            {#- A first build killed before its audit model ran: the log starts with this batch
                (same columns and types as the Python model writes; it appends from here). Made
                here, not by the hook's statement, so that dbt's relation cache knows it and
                the audit model appends instead of creating it. -#}
            {%- do run_query('create schema if not exists ' ~ audit_target.without_identifier()) -%}
            {%- do run_query('create table ' ~ audit_target ~ ' as ' ~ published) -%}
            {%- do adapter.cache_added(audit_target) -%}
        {%- else -%}
            {#- A log from before transaction scoring lacks the entity columns: add them (the
                audit model would append them too, after this hook). -#}
            {#- information_schema through run_query (adapter.get_columns_in_relation here opens a
                transaction on the model's connection that hides the table the Python model
                then writes: its rename fails) -#}
            {%- set present = run_query(
                "select lower(column_name) from information_schema.columns"
                ~ " where lower(table_schema) = lower('" ~ audit.schema ~ "')"
                ~ " and lower(table_name) = lower('" ~ audit.identifier ~ "')").columns[0].values()
                | list -%}
            {%- set missing = [] -%}
            {%- for name in ['entity_type', 'entity_id', 'transaction_id'] if name not in present -%}
                {%- do missing.append(api.Column.create(name, text)) -%}
            {%- endfor -%}
            {%- if missing -%}
                {%- do alter_relation_add_remove_columns(audit, missing, none) -%}
            {%- endif -%}
            {%- set catch_up -%}
    insert into {{ audit }} (
        prediction_id, customer_id, model_name, model_version, model_alias, selection,
        prediction_timestamp, is_anomaly, confidence, score, risk_band, scoring_batch_id,
        dbt_invocation_id, entity_type, entity_id, transaction_id
    )
    select published.*
    from ({{ published }}) as published
    where not exists (
        select 1 from {{ audit }} as logged where logged.prediction_id = published.prediction_id
    )
            {%- endset -%}
            {%- do run_query(catch_up) -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- Lowercase hex sha256 of a string expression (what Python's hashlib.sha256().hexdigest()
    gives for its UTF-8 bytes). -#}
{% macro sha256_hex(expression) -%}
    {{ return(adapter.dispatch('sha256_hex', 'fraud_detection')(expression)) }}
{%- endmacro %}

{% macro default__sha256_hex(expression) -%}
    sha2({{ expression }}, 256)
{%- endmacro %}

{% macro duckdb__sha256_hex(expression) -%}
    sha256({{ expression }})
{%- endmacro %}
