"""The production adapters compile with no network, and their governance SQL is what we expect.

`dbt compile --target databricks|snowflake --vars '{offline_compile: true, ...}'
--no-populate-cache --no-introspect`, with the profiles' placeholder hosts (offline.invalid):
nothing may connect. The hooks (mask_email function, schema usage) and the per-model grants do
not run at compile time, so analyses/governance_dcl.sql renders the very macros they call; this
test reads that compiled analysis and the compiled models:

- Databricks: the masking function in the catalog (main.silver.mask_email), grants to the groups
  the role_* vars map to, backtick-quoted; only Unity Catalog privileges (select, modify); USE
  SCHEMA and USE CATALOG.
- Snowflake: the UDF, grants to roles (quoted when the name is not a plain identifier), no
  PostgreSQL-only privileges; USAGE on the schemas and the database.
- A role name with a quote or a backtick fails the compile with a clear error.
- The access matrix (personas per folder in dbt_project.yml, expanded by
  macros/governance/access.sql; analyses/access_matrix.sql lists it) gives every relation, on
  DuckDB, Databricks and Snowflake, exactly the grants dbt rendered before the persona matrix
  (tests/governance/grants_before_personas.yml), and the compiled DCL is that matrix.

    .venv/bin/pytest tests/python/test_offline_compile.py
"""

from __future__ import annotations

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PROJECT_ROOT, DbtProject

ROOT = PROJECT_ROOT
GRANTS_BEFORE = yaml.safe_load(
    (ROOT / "tests" / "governance" / "grants_before_personas.yml").read_text()
)
# default role name -> its var (role_<persona>), as dbt_project.yml declares them
DEFAULT_ROLES = {
    role: var
    for var, role in yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"].items()
    if var.startswith("role_")
}
PERSONAS = {var.removeprefix("role_") for var in DEFAULT_ROLES.values()}
DBT_TIMEOUT = 300
ROLE_VARS = {
    "role_data_engineers": "grp-data-engineers",
    "role_data_scientists": "grp data scientists",
    "role_ml_engineers": "grp_ml_engineers",
}
OFFLINE_FLAGS = ["--no-populate-cache", "--no-introspect"]
VIEWS = ("customers_masked", "transactions_cleaned_no_pii")
BAD_ROLE_RUNS = {
    # name: (target, role name)
    "databricks_backtick": ("databricks", "ds`; drop catalog main; --"),
    "snowflake_quote": ("snowflake", 'ds"; drop database MAIN; --'),
}


def offline_project(target: str, dbt_vars: dict[str, Any], work: Path) -> DbtProject:
    """dbt on ``target`` with no credentials or hosts from the caller's shell (the profiles'
    placeholders apply), its own folders under ``work`` (DuckDB opens its file even to compile:
    a warehouse of the run's own)."""
    return DbtProject(
        work,
        vars={"offline_compile": True, **dbt_vars},
        target=target,
        drop_env_prefixes=("DATABRICKS_", "SNOWFLAKE_"),
    )


def compile_offline(
    target: str, dbt_vars: dict[str, Any], work: Path, select: list[str] | None = None
) -> Compiled:
    project = offline_project(target, dbt_vars, work)
    result = project.run(
        "compile",
        *OFFLINE_FLAGS,
        *(["--select", *select] if select else []),
        check=False,
        timeout=DBT_TIMEOUT,
    )
    return Compiled(target=target, project=project, result=result)


def tail(result: subprocess.CompletedProcess[str], lines: int = 60) -> str:
    return "\n".join((result.stdout + result.stderr).splitlines()[-lines:])


@dataclass
class Compiled:
    target: str
    project: DbtProject
    result: subprocess.CompletedProcess[str]

    def text(self, relative: str) -> str:
        path = self.project.target_dir / "compiled" / "fraud_detection" / relative
        assert path.exists(), f"{self.target}: {relative} was not compiled\n{tail(self.result)}"
        return path.read_text()

    @property
    def dcl(self) -> str:
        return self.text("analyses/governance_dcl.sql")

    def grants(self) -> list[tuple[str, str, str]]:
        """(privilege, relation, grantee) of every model grant in the compiled DCL."""
        return [
            (m["privilege"], m["relation"], m["grantee"])
            for m in re.finditer(
                r"^grant (?P<privilege>select|insert|update|delete|truncate|references|trigger|"
                r"modify) on (?P<relation>\S+) to (?:role )?(?P<grantee>.+?);$",
                self.dcl,
                flags=re.M,
            )
        ]

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.project.target_dir / "manifest.json").read_text())

    def access_matrix(self) -> list[tuple[str, str, str, str]]:
        """(relation, relation type, privilege, grantee) rows of analyses/access_matrix.sql."""
        text = self.text("analyses/access_matrix.sql")
        rows = re.findall(r"^\s*\('([^']*)', '([^']*)', '([^']*)', '([^']*)'\),?$", text, re.M)
        assert rows, text
        return rows


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Compiled]:
    """Both production adapters (full project) and the bad role names, compiled in parallel."""
    runs: dict[str, tuple[str, dict[str, Any], list[str] | None]] = {
        "databricks": ("databricks", ROLE_VARS, None),
        "snowflake": ("snowflake", ROLE_VARS, None),
        "duckdb": ("test", ROLE_VARS, ["access_matrix"]),
    }
    for name, (target, role) in BAD_ROLE_RUNS.items():
        runs[name] = (target, {**ROLE_VARS, "role_data_scientists": role}, ["governance_dcl"])
    works = {name: tmp_path_factory.mktemp(f"compile_{name}") for name in runs}
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = {
            name: pool.submit(compile_offline, target, dbt_vars, works[name], select)
            for name, (target, dbt_vars, select) in runs.items()
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("target", ["databricks", "snowflake"])
def test_compiles_offline(compiled: dict[str, Compiled], target: str) -> None:
    run = compiled[target]
    assert run.result.returncode == 0, f"dbt compile --target {target} failed:\n{tail(run.result)}"
    # the full-refresh branch of incremental models (is_incremental() is false offline)
    assert "__dbt_tmp" not in run.text("models/silver/transactions_cleaned.sql")
    assert "select max(loaded_at)" not in run.text("models/silver/transactions_cleaned.sql")


def test_databricks_governance_sql(compiled: dict[str, Compiled]) -> None:
    run = compiled["databricks"]
    dcl = run.dcl
    assert re.search(r"create or replace function main\.silver\.mask_email\(email string\)", dcl), (
        dcl
    )
    assert "main.silver.mask_email(email)" in run.text("models/governed/customers_masked.sql")

    grants = run.grants()
    assert grants, dcl
    assert {grantee for _, _, grantee in grants} == {f"`{r}`" for r in ROLE_VARS.values()}
    assert {privilege for privilege, _, _ in grants} == {"select", "modify"}
    assert ("select", "`main`.`silver`.`customers_masked`", "`grp data scientists`") in grants
    assert ("modify", "`main`.`silver`.`transactions_cleaned`", "`grp-data-engineers`") in grants
    assert ("modify", "`main`.`gold`.`transaction_features`", "`grp data scientists`") in grants
    for view in VIEWS:
        on_view = {p for p, relation, _ in grants if relation.endswith(f"`{view}`")}
        assert on_view == {"select"}, f"{view}: {on_view}"
    # data scientists: nothing in bronze, no raw silver table
    assert not [
        g
        for g in grants
        if g[2] == "`grp data scientists`"
        and (".`bronze`." in g[1] or g[1].endswith(("`customers`", "`transactions_cleaned`")))
    ]

    usage = set(re.findall(r"grant use schema on schema main\.(\w+) to (`[^`]+`);", dcl))
    assert ("silver", "`grp data scientists`") in usage
    assert ("bronze", "`grp-data-engineers`") in usage
    assert ("gold", "`grp_ml_engineers`") in usage
    assert ("bronze", "`grp data scientists`") not in usage
    catalog = set(re.findall(r"grant use catalog on catalog main to (`[^`]+`);", dcl))
    assert catalog == {f"`{r}`" for r in ROLE_VARS.values()}
    assert "`data-engineers`" not in dcl and "`data-scientists`" not in dcl  # mapping applied


def test_snowflake_governance_sql(compiled: dict[str, Compiled]) -> None:
    run = compiled["snowflake"]
    dcl = run.dcl
    assert re.search(
        r"create or replace function MAIN\.silver\.mask_email\(email varchar\)", dcl
    ), dcl
    assert "MAIN.silver.mask_email(email)" in run.text("models/governed/customers_masked.sql")

    grants = run.grants()
    assert grants, dcl
    # quoted unless a plain identifier (which Snowflake resolves upper case, as dbt does)
    assert {grantee for _, _, grantee in grants} == {
        '"grp-data-engineers"',
        '"grp data scientists"',
        "grp_ml_engineers",
    }
    assert re.search(r"^grant \w+ on \S+ to role ", dcl, flags=re.M)
    privileges = {privilege for privilege, _, _ in grants}
    assert privileges == {"select", "insert", "update", "delete", "truncate", "references"}
    assert ("select", "MAIN.silver.customers_masked", '"grp data scientists"') in grants
    assert ("insert", "MAIN.silver.transactions_cleaned", '"grp-data-engineers"') in grants
    for view in VIEWS:
        on_view = {p for p, relation, _ in grants if relation.endswith(f".{view}")}
        assert on_view == {"select", "references"}, f"{view}: {on_view}"

    usage = set(re.findall(r'grant usage on schema MAIN\.(\w+) to role ("[^"]+"|\w+);', dcl))
    assert ("silver", '"grp data scientists"') in usage
    assert ("gold", "grp_ml_engineers") in usage
    assert ("bronze", '"grp data scientists"') not in usage
    database = set(re.findall(r'grant usage on database MAIN to role ("[^"]+"|\w+);', dcl))
    assert database == {'"grp-data-engineers"', '"grp data scientists"', "grp_ml_engineers"}


@pytest.mark.parametrize("target", ["databricks", "snowflake"])
def test_grants_config_holds_only_the_adapters_privileges(
    compiled: dict[str, Compiled], target: str
) -> None:
    """ "all" is spelled out per adapter: on each, every privilege the access matrix grants is
    one that adapter has for that kind of relation, and the `grants` config of every model is
    personas with a level (select / all), nothing else."""
    allowed = {
        "databricks": {"table": {"select", "modify"}, "view": {"select"}},
        "snowflake": {
            "table": {"select", "insert", "update", "delete", "truncate", "references"},
            "view": {"select", "references"},
        },
    }[target]
    kinds = {}
    for node in compiled[target].manifest()["nodes"].values():
        if node["resource_type"] not in {"model", "seed", "snapshot"}:
            continue
        if node["config"]["materialized"] == "ephemeral":
            continue
        grants = node["config"]["grants"]
        if grants:
            kinds[f"{node['schema']}.{node['alias']}"] = (
                "view" if node["config"]["materialized"] == "view" else "table"
            )
        assert set(grants) <= PERSONAS, f"{target} {node['name']}: {sorted(set(grants) - PERSONAS)}"
        assert all(level in (["select"], ["all"]) for level in grants.values()), grants
    rows = compiled[target].access_matrix()
    assert {relation for relation, *_ in rows} == set(kinds)
    for relation, kind, privilege, _ in rows:
        assert kind == kinds[relation], f"{target} {relation}: {kind}, built as {kinds[relation]}"
        assert privilege in allowed[kind], f"{target} {relation} ({kind}): {privilege}"


def grants_by_relation(rows: list[tuple[str, str, str, str]]) -> dict[str, dict[str, list[str]]]:
    by_relation: dict[str, dict[str, list[str]]] = {}
    for relation, _, privilege, grantee in rows:
        by_relation.setdefault(relation, {}).setdefault(privilege, []).append(grantee)
    return by_relation


@pytest.mark.parametrize("target", ["duckdb", "databricks", "snowflake"])
def test_access_matrix_gives_the_grants_of_before(
    compiled: dict[str, Compiled], target: str
) -> None:
    """Every relation gets exactly the privileges, grantees and grantee order dbt rendered
    before the persona matrix (role names mapped to this run's vars); a relation added since
    gets those of the relations of its schema and kind."""
    run = compiled[target]
    assert run.result.returncode == 0, f"dbt compile ({target}) failed:\n{tail(run.result)}"
    role = {name: ROLE_VARS[var] for name, var in DEFAULT_ROLES.items()}
    before = {
        relation: {privilege: [role[r] for r in roles] for privilege, roles in grants.items()}
        for relation, grants in GRANTS_BEFORE[target].items()
    }
    rows = run.access_matrix()
    now = grants_by_relation(rows)
    kind = {relation: relation_type for relation, relation_type, _, _ in rows}
    missing = sorted(set(before) - set(now))
    assert not missing, f"{target}: relations of before without grants now: {missing}"
    different = {r: (now[r], before[r]) for r in before if now[r] != before[r]}
    assert not different, f"{target}: grants differ (now, before): {different}"
    for relation in sorted(set(now) - set(before)):
        schema = relation.split(".")[0]
        siblings = [
            before[r] for r in before if r.split(".")[0] == schema and kind[r] == kind[relation]
        ]
        if siblings:
            assert all(s == siblings[0] for s in siblings), f"{target}: {schema} is not uniform"
            assert now[relation] == siblings[0], f"{target} {relation}: {now[relation]}"


@pytest.mark.parametrize("target", ["databricks", "snowflake"])
def test_compiled_dcl_is_the_access_matrix(compiled: dict[str, Compiled], target: str) -> None:
    """The grant statements dbt issues (analyses/governance_dcl.sql) are the matrix's rows."""
    run = compiled[target]
    database = re.compile(r"^(?:`main`|MAIN)\.")
    statements = {
        (database.sub("", relation).replace("`", ""), privilege, grantee.strip('`"'))
        for privilege, relation, grantee in run.grants()
    }
    rows = {
        (relation, privilege, grantee) for relation, _, privilege, grantee in run.access_matrix()
    }
    assert statements == rows, (sorted(statements - rows), sorted(rows - statements))


@pytest.mark.parametrize("name", list(BAD_ROLE_RUNS))
def test_role_name_with_quote_fails_the_compile(compiled: dict[str, Compiled], name: str) -> None:
    run = compiled[name]
    output = run.result.stdout + run.result.stderr
    assert run.result.returncode != 0, f"{name}: a role name with a quote compiled"
    assert "Invalid role name" in output, tail(run.result)
    assert "drop " not in "".join(
        path.read_text() for path in run.project.target_dir.rglob("governance_dcl.sql")
    )
