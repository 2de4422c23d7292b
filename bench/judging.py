"""Each measurement judged against its target, with what limits it."""

import math
from typing import Any

from bench.config import LARGE_TRANSACTIONS
from bench.targets import Target, _incremental_limits, _mib, load_targets
from bench.workers_scoring import _batch_limits


class Judging:
    """Mixin of Bench: the targets."""

    # -- targets ----------------------------------------------------------------------------
    def evaluate_targets(self) -> None:
        d = self.results.details
        size = f"at {self.config.transactions:,} tx"
        at_large = self.config.transactions >= LARGE_TRANSACTIONS
        scope = "" if at_large else " (target is set at 10M: run with --large)"
        targets = self.results.targets
        specs = load_targets()

        def judge(key: str, value: float, measured: str, limited_by: str) -> Target:
            return specs[key].judge(value, measured, limited_by, at_large)

        def layers_note(name: str) -> str:
            layers = d.get("dbt", {}).get(name, {}).get("layer_seconds") or {}
            total = sum(layers.values()) or 1.0
            top = sorted(layers.items(), key=lambda kv: -kv[1])[:4]
            return ", ".join(f"{k} {v:.0f}s ({v / total:.0%})" for k, v in top)

        fixed = d.get("fixed_cost_seconds")
        fixed_note = f"fixed dbt start-up+parse {fixed:.0f}s; " if fixed else ""
        if self.data_path is not None:
            rate = self.raw_rows / self.data_path.seconds
            targets.append(
                judge(
                    "data_path_rate",
                    rate,
                    f"{rate:,.0f} tx/s {size}{scope}",
                    fixed_note + "node time by layer: " + layers_note("data-path"),
                )
            )
        limit = d.get("limit")
        if limit and "ratio_wall" in limit:
            targets.append(
                judge(
                    "limit_ratio",
                    limit["ratio_wall"],
                    f"{limit['ratio_wall']:.1f}x wall, {limit['ratio_execution']:.1f}x dbt "
                    f"execution only {size}{scope}",
                    "limit query equal to gold: "
                    f"{limit['equal_to_gold']}; the layers materialise bronze, validated silver, "
                    "rejects and run ~100 data tests the single query does not",
                )
            )
        nb = d.get("notebook")
        if nb:
            speed = nb["notebook"]["wall_seconds"] / nb["project"]["total_seconds"]
            memory = nb["project"]["peak_rss"] / max(nb["notebook"]["peak_rss"], 1)
            targets.append(
                judge(
                    "notebook_speed",
                    speed,
                    f"{speed:.2f}x {size}{scope}",
                    f"project: dbt {nb['project']['dbt_seconds']:.0f}s (incl. "
                    f"{fixed or 0:.0f}s fixed) + model {nb['project']['model_wall_seconds']:.0f}s;"
                    f" notebook {nb['notebook']['wall_seconds']:.0f}s",
                )
            )
            targets.append(
                judge(
                    "notebook_memory",
                    memory,
                    f"{memory:.2f}x ({_mib(nb['project']['peak_rss']):,.0f} vs "
                    f"{_mib(nb['notebook']['peak_rss']):,.0f} MiB) {size}{scope}",
                    "pandas holds every raw row with Python string objects; DuckDB streams",
                )
            )
        sc = (d.get("scoring") or {}).get("scoring_model")
        if sc and "latency" in sc:
            fast = sc["latency"]["fast"]
            skl = sc["latency"]["sklearn"]
            other = (d.get("scoring") or {}).get("other_model") or {}
            other_fast = (other.get("latency") or {}).get("fast") or {}
            other_note = f"; other model p99 {other_fast['p99_ms']:.3f} ms" if other_fast else ""
            targets.append(
                judge(
                    "latency_p99_ms",
                    fast["p99_ms"],
                    f"fast evaluator p99 {fast['p99_ms']:.3f} ms (plain sklearn p99 "
                    f"{skl.get('p99_ms', math.nan):.1f} ms){other_note}",
                    "plain scikit-learn spends a single row's time in input validation and one "
                    "joblib task per tree; the evaluator walks all trees at once",
                )
            )
            batch = sc["batch"]
            best_fast = max(
                batch["fast_threads"]["rows_per_s_best"], batch["fast_1_thread"]["rows_per_s_best"]
            )
            single = batch["fast_1_thread"]["rows_per_s_best"]
            base = batch["sklearn"]["rows_per_s_best"]
            job = sc.get("scoring_job") or {}
            job_note = ""
            if job:
                job_note = (
                    f"; whole scoring job {job['sklearn']['seconds'] / job['fast']['seconds']:.2f}x"
                )
            targets.append(
                judge(
                    "batch_speedup",
                    best_fast / base,
                    f"{best_fast / base:.2f}x with {self.config.threads} threads, "
                    f"{single / base:.2f}x on 1 thread ({best_fast:,.0f} vs {base:,.0f} rows/s)"
                    + job_note,
                    _batch_limits(sc, self.config.threads),
                )
            )
        if self.full_build is not None and self.full_build.peak_rss:
            peak = self.full_build.peak_rss
            targets.append(
                judge(
                    "build_peak_bytes",
                    peak,
                    f"{peak / 1e9:.2f} GB {size}{scope}",
                    "dbt + DuckDB + the in-process Python models (training, scoring) in one tree",
                )
            )
        inc = d.get("incremental")
        if inc:
            share = inc["share_of_full"]
            layers = inc.get("layer_seconds") or {}
            total = sum(layers.values()) or 1.0
            heavy = sorted(layers.items(), key=lambda kv: -kv[1])[:3]
            targets.append(
                judge(
                    "incremental_share",
                    share,
                    f"{share:.1%} ({inc['seconds']:.0f}s vs {inc['full_build_seconds']:.0f}s)",
                    "node time: "
                    + ", ".join(f"{k} {v:.0f}s ({v / total:.0%})" for k, v in heavy)
                    + "; "
                    + _incremental_limits(inc),
                )
            )
        self.judge_transaction_targets(judge, size, scope)

    def judge_transaction_targets(self, judge: Any, size: str, scope: str) -> None:
        """The transaction-level targets (issue 12): features vs the query, +1 %, scoring."""
        d = self.results.details
        targets = self.results.targets
        tx = d.get("tx_limit")
        if tx:
            targets.append(
                judge(
                    "tx_features_ratio",
                    tx["ratio_wall"],
                    f"{tx['ratio_wall']:.1f}x wall, {tx['ratio_execution']:.1f}x dbt execution "
                    f"only {size}{scope}",
                    f"query equal to the table: {tx['equal_to_table']}; dbt start-up and parse, "
                    "bronze and silver materialised with their rejects and load log, the labels "
                    f"and the features model itself ({tx['features_node_seconds'] or 0:.1f} s) "
                    "written as tables; the query keeps everything in one plan",
                )
            )
        tx_inc = d.get("tx_incremental")
        if tx_inc:
            targets.append(
                judge(
                    "tx_incremental_share",
                    tx_inc["share_of_full"],
                    f"{tx_inc['share_of_full']:.1%} ({tx_inc['node_seconds']:.1f}s vs "
                    f"{tx_inc['full_build_node_seconds']:.1f}s, the model's node time) "
                    f"{size}{scope}",
                    "the new batch reads its lookback (30 days of the customers' and merchants' "
                    "history) and merges on transaction_id; the rest of the +1 % build (silver "
                    "merges, other gold, tests) is in incremental_share",
                )
            )
        sc = d.get("tx_scoring")
        if sc and sc.get("rows_per_s"):
            targets.append(
                judge(
                    "tx_scoring_rate",
                    sc["rows_per_s"],
                    f"{sc['rows_per_s']:,.0f} tx/s on {sc['rows']:,} rows",
                    f"probability + contributions {sc['scores_seconds']:.3f}s (compiled "
                    f"margin + path attribution {sc.get('kernel_seconds') or 0:.3f}s, exact "
                    f"TreeSHAP for the {sc.get('flagged_rows', 0):,} flagged rows "
                    f"{sc.get('shap_flagged_seconds') or 0:.3f}s, preprocessing "
                    f"{sc.get('transform_seconds') or 0:.3f}s), reasons "
                    f"{sc['reasons_seconds']:.3f}s; the same rule by LightGBM's and numpy's "
                    f"code {sc['reference_rows_per_s']:,.0f} tx/s; {sc['classifier']} threads "
                    f"{sc.get('threads')}",
                )
            )
