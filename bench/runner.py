"""The orchestrator: data generation, measured dbt and worker runs, the main flow."""

import contextlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.config import (
    NEEDS_FULL_BUILD,
    BenchConfig,
    Paths,
    StepFailed,
    bench_env,
    dbt_executable,
    project_vars,
)
from bench.judging import Judging
from bench.measure import Run, log_tail, machine_info, read_run_results, run_measured
from bench.parts import Parts
from bench.parts_transactions import TransactionParts
from bench.report import render_markdown
from bench.targets import Results, Row, _mib, _rate
from bench.workers import _json_default


class Bench(Parts, TransactionParts, Judging):
    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.paths = Paths(config.out)
        self.results = Results(machine=machine_info(), config=self._config_dict())
        self.vars = project_vars()
        self.dbt = dbt_executable()
        self.raw_rows = 0
        self.state: dict[str, Any] = {}
        self.full_build: Run | None = None
        self.full_build_results: dict[str, Any] = {}
        self.data_path: Run | None = None
        self.data_path_results: dict[str, Any] = {}

    def _config_dict(self) -> dict[str, Any]:
        data = asdict(self.config)
        data["out"] = str(self.config.out)
        data["increment_transactions"] = self.config.increment
        return data

    # -- output -----------------------------------------------------------------------------
    def say(self, message: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)

    def add(self, row: Row) -> None:
        self.results.rows.append(row)
        shown = f"{row.seconds:.1f} s" if row.seconds is not None else ""
        memory = f", peak {row.peak_rss_mib:.0f} MiB" if row.peak_rss_mib is not None else ""
        self.say(f"  {row.part}: {row.measurement}: {shown}{memory} {row.note}".rstrip())

    # -- helpers ----------------------------------------------------------------------------
    @property
    def warehouse_file(self) -> Path:
        return self.paths.warehouse / "fraud.duckdb"

    def env(self, warehouse: Path | None = None) -> dict[str, str]:
        return bench_env(warehouse or self.paths.warehouse, self.paths.mlflow)

    def dbt_command(self, verb: str, name: str, target: Path, raw: Path, *extra: str) -> list[str]:
        return [
            self.dbt,
            verb,
            "--target",
            "local",
            "--vars",
            json.dumps({"raw_data_path": str(raw)}),
            "--target-path",
            str(target),
            "--log-path",
            str(self.paths.logs / f"dbt-{name}"),
            *extra,
        ]

    def run_dbt(
        self,
        verb: str,
        name: str,
        raw: Path,
        *extra: str,
        warehouse: Path | None = None,
        target_name: str = "main",
    ) -> tuple[Run, dict[str, Any]]:
        """One measured dbt invocation. Invocations on the same warehouse share a target folder,
        so dbt's partial parsing works as it does for the project's own runs."""
        target = self.paths.target(target_name)
        target.mkdir(parents=True, exist_ok=True)
        (target / "run_results.json").unlink(missing_ok=True)
        command = self.dbt_command(verb, name, target, raw, *extra)
        self.say(f"dbt {verb} ({name}) ...")
        run = run_measured(name, command, self.env(warehouse), self.paths.logs / f"{name}.log")
        summary = read_run_results(target)
        self.results.details.setdefault("dbt", {})[name] = {
            "wall_seconds": run.seconds,
            "peak_rss_bytes": run.peak_rss,
            "returncode": run.returncode,
            "log": run.log,
            **summary,
        }
        if not run.ok:
            raise StepFailed(f"dbt {verb} ({name}) failed; see {run.log}:\n{log_tail(run.log)}")
        return run, summary

    def run_worker(self, name: str, spec: dict[str, Any], label: str) -> tuple[Run, dict[str, Any]]:
        self.paths.specs.mkdir(parents=True, exist_ok=True)
        spec_path = self.paths.specs / f"{label}.json"
        result_path = self.paths.specs / f"{label}.result.json"
        result_path.unlink(missing_ok=True)
        spec = {**spec, "result": str(result_path)}
        spec_path.write_text(json.dumps(spec, default=_json_default), encoding="utf-8")
        command = [sys.executable, "-m", "bench", "_worker", name, str(spec_path)]
        self.say(f"worker {label} ...")
        run = run_measured(label, command, self.env(), self.paths.logs / f"{label}.log")
        if not run.ok or not result_path.exists():
            raise StepFailed(f"worker {label} failed; see {run.log}:\n{log_tail(run.log)}")
        return run, json.loads(result_path.read_text(encoding="utf-8"))

    def save_state(self) -> None:
        self.paths.state.write_text(json.dumps(self.state, indent=2), encoding="utf-8")

    def load_state(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.state = json.loads(self.paths.state.read_text(encoding="utf-8"))

    # -- steps ------------------------------------------------------------------------------
    def generate_data(self) -> Path:
        raw = self.paths.data(self.config)
        manifest = raw / "manifest.json"
        expected = {
            "customers": self.config.customers,
            "transactions": self.config.transactions,
            "days": self.config.days,
            "seed": self.config.seed,
        }
        reuse = False
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads(manifest.read_text(encoding="utf-8"))
            options = data["options"]
            reuse = all(options.get(k) == v for k, v in expected.items()) and (
                len(data["batches"]) == 1
            )
            self.raw_rows = int(data["row_counts"]["transactions_total"])
        if reuse:
            self.add(Row("data", "generate data (reused from an earlier run)", note=str(raw)))
            self.reset_landing(raw)
            return raw
        shutil.rmtree(raw.parent, ignore_errors=True)
        raw.mkdir(parents=True)
        command = [
            sys.executable, "-m", "simulator",
            "--customers", str(self.config.customers),
            "--transactions", str(self.config.transactions),
            "--days", str(self.config.days),
            "--seed", str(self.config.seed),
            "--out", str(raw), "--quiet",
        ]  # fmt: skip
        self.say(f"generating {self.config.transactions:,} transactions into {raw} ...")
        run = run_measured("datagen", command, self.env(), self.paths.logs / "datagen.log")
        if not run.ok:
            raise StepFailed(f"data generation failed; see {run.log}:\n{log_tail(run.log)}")
        data = json.loads(manifest.read_text(encoding="utf-8"))
        self.raw_rows = int(data["row_counts"]["transactions_total"])
        self.add(
            Row(
                "data",
                "generate data (simulator, once)",
                run.seconds,
                self.raw_rows,
                _rate(self.raw_rows, run.seconds),
                _mib(run.peak_rss),
                f"{self.config.customers:,} customers",
            )
        )
        self.reset_landing(raw)
        return raw

    def reset_landing(self, raw: Path) -> None:
        landing = self.paths.landing
        shutil.rmtree(landing, ignore_errors=True)
        landing.mkdir(parents=True)
        raw = raw.resolve()
        for sub in ("customers", "merchants"):
            (landing / sub).symlink_to(raw / sub, target_is_directory=True)
        # per-batch folders get file links, so an appended batch lands beside them, not in raw
        for sub in ("transactions", "fraud_reports"):
            (landing / sub).mkdir(parents=True)
            for source in sorted((raw / sub).glob("*.parquet")):
                (landing / sub / source.name).symlink_to(source)
        shutil.copy2(raw / "manifest.json", landing / "manifest.json")

    def fixed_cost(self, raw: Path) -> None:
        shutil.rmtree(self.paths.target("main"), ignore_errors=True)
        run, _ = self.run_dbt("parse", "parse", raw, "--no-partial-parse")
        self.add(
            Row(
                "data",
                "fixed cost: dbt parse (start-up + parse, no data)",
                run.seconds,
                peak_rss_mib=_mib(run.peak_rss),
            )
        )
        self.results.details["fixed_cost_seconds"] = run.seconds

    def do_full_build(self, raw: Path, part: str) -> None:
        shutil.rmtree(self.paths.warehouse, ignore_errors=True)
        shutil.rmtree(self.paths.mlflow, ignore_errors=True)
        self.paths.warehouse.mkdir(parents=True)
        self.state = {}
        self.save_state()
        run, summary = self.run_dbt("build", "full-build", self.paths.landing)
        self.full_build, self.full_build_results = run, summary
        self.add(
            Row(
                part,
                "full dbt build (all models, tests, training, scoring)",
                run.seconds,
                self.raw_rows,
                _rate(self.raw_rows, run.seconds),
                _mib(run.peak_rss),
                f"{summary.get('nodes', '?')} nodes; dbt run "
                f"{summary.get('elapsed_seconds', 0):.1f} s after parse",
            )
        )
        self.promote()
        self.state = {
            "dataset": str(raw),
            "full_build_seconds": run.seconds,
            "full_build_peak_rss": run.peak_rss,
            "full_build_results": summary,
            "incremented": False,
        }
        self.save_state()

    def promote(self) -> None:
        """As `make run`: the transaction classifier, the supervised customer model, then the
        unsupervised one (refusal expected)."""
        outcomes = {}
        for model in ("transaction_classifier", "random_forest", "isolation_forest"):
            command = [
                sys.executable, "-m", "ml.promotion.cli",
                "--model", model, "--candidate", "latest", "--actor", "fraud-bench",
            ]  # fmt: skip
            run = run_measured(
                f"promote-{model}", command, self.env(), self.paths.logs / f"promote-{model}.log"
            )
            outcomes[model] = {0: "promoted", 1: "refused by a gate"}.get(
                run.returncode, f"error (exit {run.returncode})"
            )
        self.results.details["promotion"] = outcomes
        self.say(f"promotion (as make run): {outcomes}")

    def ensure_full_build(self, raw: Path) -> None:
        if self.full_build is not None:
            return
        self.load_state()
        if (
            self.state.get("dataset") == str(raw)
            and not self.state.get("incremented")
            and self.warehouse_file.exists()
        ):
            self.say("reusing the full build of an earlier run (state.json)")
            self.full_build_results = self.state.get("full_build_results", {})
            self.full_build = Run(
                "full-build (earlier run)",
                [],
                float(self.state.get("full_build_seconds", 0.0)),
                int(self.state.get("full_build_peak_rss", 0)),
                0,
                "",
            )
            return
        self.do_full_build(raw, "prerequisite")

    # -- main flow --------------------------------------------------------------------------
    def run(self) -> int:
        started = time.perf_counter()
        self.results.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.paths.work.mkdir(parents=True, exist_ok=True)
        parts = self.config.parts
        status = 0
        try:
            raw = self.generate_data()
            if "data" in parts:
                self.part_data(raw)
            if NEEDS_FULL_BUILD & set(parts):
                self.ensure_full_build(raw)
            if "limit" in parts:
                self.part_limit(raw)
            if "notebook" in parts:
                self.part_notebook(raw)
            if "training" in parts:
                self.part_training()
            if "tx_limit" in parts:
                self.part_tx_limit()
            if "scoring" in parts:
                self.part_scoring()
            if "tx_scoring" in parts:
                self.part_tx_scoring()
            if "incremental" in parts:
                self.part_incremental()
                self.tx_incremental_rows()
        except StepFailed as exc:
            self.results.status = "failed"
            self.results.notes.append(str(exc).splitlines()[0])
            print(f"error: {exc}", file=sys.stderr)
            status = 1
        self.evaluate_targets()
        self.results.total_seconds = time.perf_counter() - started
        self.results.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
        load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
        self.results.machine["load_average_at_end"] = [round(x, 2) for x in load]
        self.write()
        return status

    def write(self) -> None:
        out = self.config.out
        data = asdict(self.results)
        (out / "results.json").write_text(
            json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8"
        )
        text = render_markdown(self.results)
        (out / "results.md").write_text(text, encoding="utf-8")
        print(text)
        print(f"results: {out / 'results.json'}, {out / 'results.md'}")
