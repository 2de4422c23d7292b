"""Rendering the results as Markdown."""

import math

from bench.targets import Results

# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _fmt(value: float | int | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return format(value, spec)


def render_markdown(results: Results) -> str:
    m = results.machine
    c = results.config
    lines = [
        "# fraud-bench results",
        "",
        f"Machine: {m['cores_logical']} logical cores ({m['cores_physical']} physical), "
        f"{m['ram_gib']} GiB RAM, {m['cpu_model']}; {m['os']}",
        f"Versions: python {m['python']}, duckdb {m['duckdb']}, dbt-core {m['dbt-core']}, "
        f"dbt-duckdb {m['dbt-duckdb']}, scikit-learn {m['scikit-learn']}, numpy {m['numpy']}, "
        f"pandas {m['pandas']}, mlflow {m['mlflow']}",
        f"Load average at start {m.get('load_average_at_start')}, at end "
        f"{m.get('load_average_at_end')} (shared machine: compare figures of the same run)",
        f"Run: {c['transactions']:,} transactions, {c['customers']:,} customers, {c['days']} days,"
        f" seed {c['seed']}; parts {','.join(c['parts'])}; started {results.started_at}, "
        f"{results.total_seconds / 60:.1f} min, status {results.status}",
        "",
        "| part | measurement | wall s | rows | rows/s | peak RSS MiB | notes |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results.rows:
        lines.append(
            f"| {r.part} | {r.measurement} | {_fmt(r.seconds, '.2f')} | {_fmt(r.rows, ',')} | "
            f"{_fmt(r.rows_per_s, ',.0f')} | {_fmt(r.peak_rss_mib, ',.0f')} | {r.note} |"
        )
    lines += [
        "",
        "| target | goal | measured | met | what limits it |",
        "|---|---|---|---|---|",
    ]
    for t in results.targets:
        met = "n/a" if t.met is None else ("met" if t.met else "MISSED")
        lines.append(f"| {t.name} | {t.target} | {t.measured} | {met} | {t.limited_by} |")
    layers = {
        name: info.get("layer_seconds")
        for name, info in results.details.get("dbt", {}).items()
        if info.get("layer_seconds")
    }
    if layers:
        names = sorted({k for v in layers.values() for k in v})
        lines += [
            "",
            "dbt node seconds by layer (sum of node times; 2 threads overlap):",
            "",
            "| dbt invocation | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for name, values in layers.items():
            lines.append(
                f"| {name} | " + " | ".join(_fmt(values.get(k), ".1f") for k in names) + " |"
            )
    if results.notes:
        lines += ["", "Notes:", *[f"- {n}" for n in results.notes]]
    return "\n".join(lines) + "\n"
