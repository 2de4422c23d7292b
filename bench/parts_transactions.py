"""The transaction-level parts (issue 12, "Speed"): gold.transaction_risk_features built in
full by dbt against one hand-written DuckDB query over the Parquet files (``tx_limit``), its
incremental build after +1 % against its full build (rows added to the ``incremental`` part),
and scoring with reason codes in transactions per second (``tx_scoring``). The whole build's
peak memory is the full build's (``build_peak_bytes``)."""

import shutil
from typing import Any

from bench.config import TX_FEATURES_MODEL
from bench.targets import Row, _mib, _rate


class TransactionParts:
    """Mixin of Bench: the transaction-level parts."""

    def part_tx_limit(self) -> None:
        """``dbt run --full-refresh --select +transaction_risk_features`` (bronze -> silver ->
        labels -> features from the landing files) against the reference query, which is
        checked equal to the table that run built. On a copy of the full build's warehouse
        (seeds, registry state): a partial full refresh would leave the main warehouse's load
        log and bronze out of step for the parts after this one."""
        warehouse = self.paths.work / "warehouse-tx"
        shutil.rmtree(warehouse, ignore_errors=True)
        warehouse.mkdir(parents=True)
        shutil.copy2(self.warehouse_file, warehouse / self.warehouse_file.name)
        run, summary = self.run_dbt(
            "run",
            "tx-features-full",
            self.paths.landing,
            "--full-refresh",
            "--select",
            f"+{TX_FEATURES_MODEL}",
            warehouse=warehouse,
            target_name="tx",
        )
        spec = {
            "raw": str(self.paths.landing),
            "vars": self.vars,
            "limit_db": str(self.paths.work / "tx_limit.duckdb"),
            "warehouse_file": str(warehouse / self.warehouse_file.name),
        }
        worker, result = self.run_worker("tx_limit", spec, "tx_limit")
        rows = result["rows"]
        elapsed = float(summary.get("elapsed_seconds") or 0.0)
        node = (summary.get("model_seconds") or {}).get(TX_FEATURES_MODEL)
        query = result["query_seconds"]
        self.results.details["tx_limit"] = {
            **result,
            "process_seconds": worker.seconds,
            "peak_rss": worker.peak_rss,
            "dbt_wall_seconds": run.seconds,
            "dbt_execution_seconds": elapsed,
            "dbt_peak_rss": run.peak_rss,
            "features_node_seconds": node,
            "ratio_wall": run.seconds / query,
            "ratio_execution": elapsed / query,
        }
        self.add(
            Row(
                "tx_limit",
                "dbt run --full-refresh +transaction_risk_features",
                run.seconds,
                rows,
                _rate(rows, run.seconds),
                _mib(run.peak_rss),
                f"dbt execution {elapsed:.1f} s after parse; the features model alone "
                f"{node or 0:.1f} s",
            )
        )
        equal = "equal to the table" if result["equal_to_table"] else "DIFFERENT FROM THE TABLE"
        self.add(
            Row(
                "tx_limit",
                "one DuckDB query over Parquet -> transaction_risk_features",
                query,
                rows,
                _rate(rows, query),
                _mib(worker.peak_rss),
                f"{equal} ({result['matched_rows']:,} of {result['table_rows']:,} rows matched, "
                f"{result['columns_compared']} columns, max rel. diff "
                f"{result['max_relative_difference']:.1e})",
            )
        )
        self.add(
            Row(
                "tx_limit",
                "ratio dbt full build / query",
                note=f"{run.seconds / query:.1f}x wall ({elapsed / query:.1f}x dbt execution only)",
            )
        )

    def part_tx_scoring(self) -> None:
        spec = {"warehouse_file": str(self.warehouse_file), "repeats": 1}
        run, result = self.run_worker("tx_scoring", spec, "tx_scoring")
        self.results.details["tx_scoring"] = {**result, "peak_rss": run.peak_rss}
        if result.get("model") is None:
            self.add(Row("tx_scoring", "transaction classifier", note=result.get("note", "")))
            return
        rows = result["rows"]
        steps: list[tuple[str, Any]] = [
            ("encode (feature_matrix, not in the rates)", result["encode_seconds"]),
            ("compile once per model (not in the rates)", result["compile_seconds"]),
            ("probability + contributions (explained_scores)", result["scores_seconds"]),
            ("  of which: preprocessing step", result["transform_seconds"]),
            ("  of which: compiled margin + path attribution", result["kernel_seconds"]),
            ("  of which: exact TreeSHAP of the flagged rows", result["shap_flagged_seconds"]),
            ("top-3 reasons (reason_columns)", result["reasons_seconds"]),
            ("reference: predict_proba (LightGBM)", result["reference_predict_seconds"]),
            (
                "reference: contributions (numpy path attribution + TreeSHAP)",
                result["reference_contributions_seconds"],
            ),
        ]
        for label, seconds in steps:
            if seconds is not None:
                self.add(Row("tx_scoring", label, seconds, rows, _rate(rows, seconds)))
        sample = (
            f"{result['model']}, {result['classifier']}; a uniform sample of {rows:,} of the "
            f"table's {result.get('table_rows', rows):,} rows, {result['flagged_rows']:,} flagged"
        )
        self.add(
            Row(
                "tx_scoring",
                "scoring with reason codes, reference (predict + contributions + reasons)",
                result["reference_seconds"],
                rows,
                result["reference_rows_per_s"],
                note=sample,
            )
        )
        self.add(
            Row(
                "tx_scoring",
                "scoring with reason codes (explained_scores + reasons)",
                result["seconds"],
                rows,
                result["rows_per_s"],
                _mib(run.peak_rss),
                f"max difference to the reference: probability "
                f"{result['max_probability_difference']:.1e}, contributions "
                f"{result['max_contribution_difference']:.1e}; same flags: {result['same_flags']}",
            )
        )

    def tx_incremental_rows(self) -> None:
        """The features model's own time in the incremental build after +1 % against its time
        in the full build from empty (dbt's run_results, per node)."""
        inc = self.results.details.get("dbt", {}).get("incremental-build", {})
        incremental = (inc.get("model_seconds") or {}).get(TX_FEATURES_MODEL)
        full = (self.full_build_results.get("model_seconds") or {}).get(TX_FEATURES_MODEL)
        if not incremental or not full:
            self.add(
                Row("incremental", "transaction_risk_features +1 %", note="no node time recorded")
            )
            return
        share = incremental / full
        self.results.details["tx_incremental"] = {
            "node_seconds": incremental,
            "full_build_node_seconds": full,
            "share_of_full": share,
        }
        self.add(
            Row(
                "incremental",
                "transaction_risk_features after +1 % (model's own node time)",
                incremental,
                note=f"{share:.1%} of its full build ({full:.1f} s)",
            )
        )
