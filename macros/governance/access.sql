{#-
    The access matrix in one place. dbt_project.yml states, per folder, which persona gets which
    level (data_engineers / data_scientists / ml_engineers: select or all):

        +grants: {data_engineers: all, data_scientists: select}

    dbt cannot call a macro inside dbt_project.yml, so the `grants` config (and the manifest)
    holds the personas and access_grants below turns them into the privilege -> roles mapping
    dbt applies, wherever grants are used: the materializations' apply_grants
    (macros/overrides/grants.sql), schema usage (grant_schema_usage.sql),
    analyses/governance_dcl.sql and analyses/access_matrix.sql. DuckDB ignores grants.

    Role names: persona <p> is the group in var role_<p> (declared once, in dbt_project.yml vars).
    Privileges: `select` is select; `all` is every privilege of the adapter for that kind of
    relation, one key per privilege, because dbt compares the configured keys with the
    privileges the warehouse reports one by one (information_schema / SHOW GRANTS): a literal
    "all privileges" key would be revoked and re-granted on every incremental run.
        tables  postgres (and others): select insert update delete truncate references trigger
                snowflake:  select insert update delete truncate references
                databricks (Unity Catalog): select modify
        views   postgres: as tables; snowflake: select references; databricks: select
    A privilege nobody holds is left out. Grantees are listed in persona name order, so the
    statements do not depend on how the YAML is written. An unknown persona or level fails the
    run with a message naming it.
-#}

{%- macro access_privileges(relation_type) -%}
    {%- set privileges = {
        'databricks': {
            'table': ['select', 'modify'],
            'view': ['select'],
        },
        'snowflake': {
            'table': ['select', 'insert', 'update', 'delete', 'truncate', 'references'],
            'view': ['select', 'references'],
        },
        'default': {
            'table': ['select', 'insert', 'update', 'delete', 'truncate', 'references', 'trigger'],
            'view': ['select', 'insert', 'update', 'delete', 'truncate', 'references', 'trigger'],
        },
    } -%}
    {%- set by_kind = privileges.get(adapter.type(), privileges['default']) -%}
    {{ return(by_kind['view' if relation_type == 'view' else 'table']) }}
{%- endmacro -%}

{%- macro access_role(persona) -%}
    {%- set persona = persona | string -%}
    {%- if not modules.re.fullmatch('[a-z][a-z0-9_]*', persona) or var('role_' ~ persona, none) is none -%}
        {{ exceptions.raise_compiler_error(
            "Unknown persona " ~ (persona | tojson) ~ " in a grants config: a persona <p> needs var"
            ~ " role_<p> (dbt_project.yml vars declare role_data_engineers, role_data_scientists,"
            ~ " role_ml_engineers)") }}
    {%- endif -%}
    {{ return(var('role_' ~ persona)) }}
{%- endmacro -%}

{#-
    grant_config: {persona: level} with level 'select' or 'all' (dbt stores each config value as
    a one-item list, ['all']); relation_type: 'view' or anything else (a table).
-#}
{%- macro access_grants(grant_config, relation_type) -%}
    {%- set level_of = {} -%}
    {%- for persona, level in (grant_config or {}).items() -%}
        {%- set level = [level] if level is string else (level | list) -%}
        {%- if level | length != 1 or level[0] not in ['select', 'all'] -%}
            {{ exceptions.raise_compiler_error(
                "Invalid access level " ~ (level | tojson) ~ " for persona " ~ (persona | tojson)
                ~ " in a grants config: select or all") }}
        {%- endif -%}
        {%- do level_of.update({persona: level[0]}) -%}
    {%- endfor -%}
    {%- set grants = {} -%}
    {%- for privilege in access_privileges(relation_type) -%}
        {%- set roles = [] -%}
        {%- for persona in level_of.keys() | sort
                if privilege == 'select' or level_of[persona] == 'all' -%}
            {%- do roles.append(access_role(persona)) -%}
        {%- endfor -%}
        {%- if roles -%}
            {%- do grants.update({privilege: roles}) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(grants) }}
{%- endmacro -%}

{#- The relation kind of a graph node, as access_grants expects it. -#}
{%- macro access_relation_type(node) -%}
    {{ return('view' if node.config.materialized == 'view' else 'table') }}
{%- endmacro -%}

{#-
    Every relation's grants on the current target, one [relation, relation type, privilege,
    role] per grant, from the graph (analyses/access_matrix.sql renders them). Role names are
    validated as the grant statements validate them (quote_grantee).
-#}
{%- macro access_matrix_rows() -%}
    {%- set rows = [] -%}
    {%- for node in graph.nodes.values() | sort(attribute='unique_id')
            if node.resource_type in ['model', 'seed', 'snapshot']
                and node.config.materialized != 'ephemeral' -%}
        {%- set relation_type = access_relation_type(node) -%}
        {%- for privilege, roles in access_grants(node.config.grants, relation_type).items() -%}
            {%- for role in roles -%}
                {%- do quote_grantee(role) -%}
                {%- do rows.append([node.schema ~ '.' ~ node.alias, relation_type, privilege, role]) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(rows) }}
{%- endmacro -%}
