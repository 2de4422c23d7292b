"""The parts of the benchmark (data, limit, notebook, training, scoring, incremental)."""

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from bench.config import BATCH_REPEATS, TRAINING_MODELS, StepFailed, increment_fraud_rate
from bench.measure import log_tail, run_measured
from bench.targets import Row, _mib, _rate
from bench.workers_data import _read_table


class Parts:
    """Mixin of Bench: one method per part."""

    def part_data(self, raw: Path) -> None:
        self.fixed_cost(raw)
        self.do_full_build(raw, "data")
        exclude = ["--exclude", *TRAINING_MODELS]
        run, summary = self.run_dbt(
            "build", "data-path", self.paths.landing, "--full-refresh", *exclude
        )
        self.data_path, self.data_path_results = run, summary
        self.add(
            Row(
                "data",
                "data path bronze->silver->gold->scores (dbt build, training excluded)",
                run.seconds,
                self.raw_rows,
                _rate(self.raw_rows, run.seconds),
                _mib(run.peak_rss),
                f"full refresh, tests included; dbt run {summary.get('elapsed_seconds', 0):.1f} s "
                "after parse",
            )
        )
        elapsed = summary.get("elapsed_seconds") or 0.0
        if elapsed:
            self.add(
                Row(
                    "data",
                    "  same, dbt execution only (run_results elapsed, parse excluded)",
                    elapsed,
                    self.raw_rows,
                    _rate(self.raw_rows, elapsed),
                )
            )

    def part_limit(self, raw: Path) -> None:
        spec = {
            "raw": str(raw),
            "vars": self.vars,
            "limit_db": str(self.paths.work / "limit.duckdb"),
            "warehouse_file": str(self.warehouse_file),
        }
        run, result = self.run_worker("limit", spec, "limit")
        self.results.details["limit"] = {**result, "process_seconds": run.seconds}
        equal = "equal to gold" if result["equal_to_gold"] else "DIFFERENT FROM GOLD"
        self.add(
            Row(
                "limit",
                "one DuckDB query over Parquet -> 16 features",
                result["query_seconds"],
                self.raw_rows,
                _rate(self.raw_rows, result["query_seconds"]),
                _mib(run.peak_rss),
                f"{result['rows']:,} customers, {equal} (max rel. diff "
                f"{result['max_relative_difference']:.1e})",
            )
        )
        if self.data_path is not None:
            ratio = self.data_path.seconds / result["query_seconds"]
            elapsed = self.data_path_results.get("elapsed_seconds") or 0.0
            self.add(
                Row(
                    "limit",
                    "ratio data path / limit",
                    note=f"{ratio:.1f}x wall ({elapsed / result['query_seconds']:.1f}x dbt "
                    "execution only)",
                )
            )
            self.results.details["limit"]["ratio_wall"] = ratio
            self.results.details["limit"]["ratio_execution"] = elapsed / result["query_seconds"]

    def part_notebook(self, raw: Path) -> None:
        run_nb, nb = self.run_worker("notebook", {"raw": str(raw), "vars": self.vars}, "notebook")
        self.add(
            Row(
                "notebook",
                "notebook: pandas features + median fill + scaler + IsolationForest + score",
                run_nb.seconds,
                nb["transactions"],
                _rate(nb["transactions"], run_nb.seconds),
                _mib(run_nb.peak_rss),
                ", ".join(f"{k} {v:.1f}s" for k, v in nb["phases"].items()),
            )
        )
        shutil.rmtree(self.paths.warehouse_same_work, ignore_errors=True)
        self.paths.warehouse_same_work.mkdir(parents=True)
        # models and the reference seeds silver joins, without tests: the notebook runs none
        run_dbt, summary = self.run_dbt(
            "build",
            "same-work-dbt",
            self.paths.landing,
            "--select",
            "+transaction_features",
            "--resource-type",
            "model",
            "--resource-type",
            "seed",
            warehouse=self.paths.warehouse_same_work,
            target_name="same-work",
        )
        spec = {"warehouse_file": str(self.paths.warehouse_same_work / "fraud.duckdb")}
        run_ml, ml = self.run_worker("same-work-model", spec, "same-work-model")
        total = run_dbt.seconds + run_ml.seconds
        peak = max(run_dbt.peak_rss, run_ml.peak_rss)
        self.add(
            Row(
                "notebook",
                "project, same work: dbt build +transaction_features (models, seeds)",
                run_dbt.seconds,
                self.raw_rows,
                _rate(self.raw_rows, run_dbt.seconds),
                _mib(run_dbt.peak_rss),
                f"{summary.get('nodes', '?')} models, no tests",
            )
        )
        self.add(
            Row(
                "notebook",
                "project, same work: IsolationForest pipeline fit + score on gold",
                run_ml.seconds,
                ml["customers_scored"],
                None,
                _mib(run_ml.peak_rss),
                ", ".join(f"{k} {v:.1f}s" for k, v in ml["phases"].items()),
            )
        )
        self.add(
            Row(
                "notebook",
                "project, same work: total (sequential steps; peak = max)",
                total,
                self.raw_rows,
                _rate(self.raw_rows, total),
                _mib(peak),
                f"notebook/project time {run_nb.seconds / total:.2f}x, memory "
                f"{peak / max(run_nb.peak_rss, 1):.2f} of the notebook's",
            )
        )
        self.results.details["notebook"] = {
            "notebook": {**nb, "wall_seconds": run_nb.seconds, "peak_rss": run_nb.peak_rss},
            "project": {
                "dbt_seconds": run_dbt.seconds,
                "dbt_peak_rss": run_dbt.peak_rss,
                "model": ml,
                "model_wall_seconds": run_ml.seconds,
                "model_peak_rss": run_ml.peak_rss,
                "total_seconds": total,
                "peak_rss": peak,
            },
        }

    def part_training(self) -> None:
        spec = {"warehouse_file": str(self.warehouse_file), "rerun": self.config.training_rerun}
        run, result = self.run_worker("training", spec, "training")
        self.results.details["training"] = result
        nodes = {
            item["node"].rsplit(".", 1)[-1]: item["seconds"]
            for item in self.full_build_results.get("slowest", [])
        }
        for model in TRAINING_MODELS:
            logged = result["logged"].get(model, {})
            short = model.replace("_training_runs", "")
            plots = result["direct"].get(short, {}).get("plots_total")
            node = nodes.get(model)
            parts = []
            if logged.get("fit_seconds") is not None:
                parts.append(f"fit {logged['fit_seconds']:.1f}s")
            if logged.get("mlflow_run_seconds") is not None:
                parts.append(f"MLflow logging+registration {logged['mlflow_run_seconds']:.1f}s")
            if plots is not None:
                parts.append(f"plots {plots:.1f}s (timed directly)")
            if node is not None:
                parts.append(f"dbt node {node:.1f}s")
            if logged.get("status") and logged.get("status") != "trained":
                parts.append(f"status {logged['status']}")
            self.add(
                Row(
                    "training",
                    f"{short}: training total (logged by ml.training)",
                    logged.get("training_seconds"),
                    logged.get("n_train") or logged.get("n_customers"),
                    None,
                    None,
                    "; ".join(parts),
                )
            )
            rerun = (result.get("rerun") or {}).get(short)
            if rerun:
                phases = sorted(rerun["phases"].items(), key=lambda kv: -kv[1])
                self.add(
                    Row(
                        "training",
                        f"{short}: rerun with a timer per phase",
                        rerun["total_seconds"],
                        note=", ".join(f"{k} {v:.1f}s" for k, v in phases if v >= 0.05),
                    )
                )
        self.results.details["training"]["worker_seconds"] = run.seconds

    def part_scoring(self) -> None:
        spec = {
            "warehouse_file": str(self.warehouse_file),
            "latency_calls": self.config.latency_calls,
            "threads": self.config.threads,
        }
        run, result = self.run_worker("scoring", spec, "scoring")
        self.results.details["scoring"] = {**result, "peak_rss": run.peak_rss}
        self._scoring_rows(result["scoring_model"], "scoring model")
        if "other_model" in result:
            self._scoring_rows(result["other_model"], "other model")

    def _scoring_rows(self, result: dict[str, Any], role: str) -> None:
        short = result["name"].rsplit(".", 1)[-1].replace("fraud_detection_", "")
        label = f"{short} v{result['version']}, {result['selection']}"
        prefix = f"[{role}: {label}]"
        if "error" in result:
            self.add(Row("scoring", prefix, note=result["error"]))
            return
        n = result["rows"]
        job = result.get("scoring_job")
        if job:
            self.add(
                Row(
                    "scoring",
                    f"{prefix} scoring model's job (ml.scoring.score_customers incl. reason "
                    "codes), sklearn",
                    job["sklearn"]["seconds"],
                    n,
                    job["sklearn"]["rows_per_s"],
                )
            )
            self.add(
                Row(
                    "scoring",
                    f"{prefix} same job as run_scoring runs it (fast_scoring_model: compile, "
                    "check on 1,000 rows, fast evaluator)",
                    job["fast"]["seconds"],
                    n,
                    job["fast"]["rows_per_s"],
                    note=f"max |score diff| {job['max_abs_score_difference']:.1e}, reasons "
                    f"identical: {job['reasons_identical']}",
                )
            )
        batch = result["batch"]
        names = {
            "sklearn": "batch score, plain scikit-learn",
            "fast_1_thread": "batch score, fast evaluator, 1 thread",
            "fast_threads": f"batch score, fast evaluator, {self.config.threads} threads",
        }
        for key, text in names.items():
            self.add(
                Row(
                    "scoring",
                    f"{prefix} {text}",
                    batch[key]["best_seconds"],
                    n,
                    batch[key]["rows_per_s_best"],
                    note=f"best of {BATCH_REPEATS}, median {batch[key]['median_seconds']:.3f}s",
                )
            )
        diffs = result["max_abs_difference"]
        self.add(
            Row(
                "scoring",
                f"{prefix} fast evaluator == scikit-learn on every gold row",
                note=f"{'OK' if result['exact_within_tolerance'] else 'MISMATCH'}: max |diff| "
                + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())
                + f" (tolerance {result['tolerance']:.0e})",
            )
        )
        for key, text in (("fast", "fast evaluator"), ("sklearn", "plain scikit-learn")):
            lat = result["latency"][key]
            if lat:
                self.add(
                    Row(
                        "scoring",
                        f"{prefix} single-row latency, {text}",
                        note=f"p50 {lat['p50_ms']:.3f} ms, p99 {lat['p99_ms']:.3f} ms, p99.9 "
                        f"{lat['p999_ms']:.3f} ms over {lat['calls']:,} calls",
                    )
                )

    def part_incremental(self) -> None:
        assert self.full_build is not None
        incr = self.paths.landing
        fraud_rate = increment_fraud_rate(self.config.increment, self.config.customers)
        command = [
            sys.executable, "-m", "simulator", "--append",
            "--transactions", str(self.config.increment),
            "--days", str(self.config.days),
            "--fraud-rate", repr(fraud_rate),
            "--seed", str(self.config.seed + 1),
            "--out", str(incr), "--quiet",
        ]  # fmt: skip
        gen = run_measured("datagen-append", command, self.env(), self.paths.logs / "append.log")
        if not gen.ok:
            raise StepFailed(f"simulator --append failed; see {gen.log}:\n{log_tail(gen.log)}")
        manifest = json.loads((incr / "manifest.json").read_text(encoding="utf-8"))
        added = int(manifest["batches"][-1]["row_counts"]["total"])
        self.add(
            Row(
                "incremental",
                "append 1 % (simulator --append)",
                gen.seconds,
                added,
                _rate(added, gen.seconds),
                _mib(gen.peak_rss),
            )
        )
        self.state["incremented"] = True
        self.save_state()
        run, summary = self.run_dbt("build", "incremental-build", incr)
        full = self.full_build.seconds
        training = self.training_decisions()
        retrained = [model for model, (status, _) in training.items() if status == "trained"]
        self.add(
            Row(
                "incremental",
                "dbt build after +1 % (incremental models append/merge)",
                run.seconds,
                added,
                _rate(added, run.seconds),
                _mib(run.peak_rss),
                f"{run.seconds / full:.1%} of the full build ({full:.1f} s); retrained: "
                + (", ".join(retrained) or "none (retrain policy kept the registered models)"),
            )
        )
        full_layers = self.full_build_results.get("layer_seconds") or {}
        self.results.details["incremental"] = {
            "added_rows": added,
            "seconds": run.seconds,
            "full_build_seconds": full,
            "share_of_full": run.seconds / full,
            "layer_seconds": summary.get("layer_seconds"),
            "full_build_layer_seconds": full_layers,
            "training_decisions": {
                model: {"status": status, "skip_reason": reason}
                for model, (status, reason) in training.items()
            },
            "full_build_training_node_seconds": full_layers.get("training"),
        }

    def training_decisions(self) -> dict[str, tuple[str, str | None]]:
        """Status and skip reason of each model's latest *_training_runs row."""
        import pandas as pd

        decisions: dict[str, tuple[str, str | None]] = {}
        for table in TRAINING_MODELS:
            model = table.removesuffix("_training_runs")
            frame = _read_table(
                str(self.warehouse_file),
                f"select status, skip_reason from ml_models.{table} "
                "order by trained_at desc limit 1",
            )
            if not frame.empty:
                reason = frame["skip_reason"].iloc[0]
                decisions[model] = (
                    str(frame["status"].iloc[0]),
                    None if pd.isna(reason) else str(reason),
                )
        return decisions
