"""bench.harness: bad input exits 2 before any work; helpers (process-tree memory, dbt run_results,
rendering); a quick smoke run of the harness on tiny data (notebook part: data generation, dbt,
two workers, results files) whose gold table also proves the one-query limit equal to gold.
The benchmarks themselves are not part of the test suite (``make bench``)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from bench import harness
from bench.harness import BenchConfig, Paths
from simulator import generate

TINY = ["--transactions", "3000", "--customers", "120", "--days", "30"]


def _no_work_done(out: Path) -> bool:
    return not (out / "work").exists() and not (out / "results.json").exists()


# ------------------------------------------------------------------ bad input: exit 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--transactions", "0"], "positive"),
        (["--transactions", "-5"], "positive"),
        (["--transactions", "300000000"], "beyond"),
        (["--transactions", "1000", "--customers", "100000"], "impossible size"),
        (["--transactions", "2000", "--customers", "0"], "positive"),
        (["--transactions", "abc"], "not an integer"),
        (["--parts", "data,bogus"], "unknown part"),
        (["--large", "--transactions", "5"], "not allowed"),
    ],
)
def test_impossible_sizes_and_bad_options_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert harness.main([*args, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert _no_work_done(tmp_path)


def test_missing_output_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "missing" / "out"
    assert harness.main([*TINY, "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_output_path_that_is_a_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "file"
    out.write_text("x")
    assert harness.main([*TINY, "--out", str(out)]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_unwritable_output_folder_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_access = os.access

    def access(path: object, mode: int) -> bool:
        if Path(str(path)) == tmp_path and mode & os.W_OK:
            return False  # root ignores permission bits: simulate a read-only folder
        return real_access(path, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(harness.os, "access", access)
    assert harness.main([*TINY, "--out", str(tmp_path)]) == 2
    assert "not writable" in capsys.readouterr().err
    assert _no_work_done(tmp_path)


def test_output_inside_the_main_jobs_folders_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    out = harness.PROJECT_ROOT / "warehouse" / "bench-here"
    assert harness.main([*TINY, "--out", str(out)]) == 2
    assert "main job" in capsys.readouterr().err
    assert not out.exists()


def test_full_disk_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(harness.shutil, "disk_usage", lambda _p: usage(10**12, 10**12, 10**6))
    assert harness.main([*TINY, "--out", str(tmp_path)]) == 2
    assert "not enough free disk space" in capsys.readouterr().err
    assert _no_work_done(tmp_path)


def test_notebook_part_too_large_for_the_ram_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    memory = namedtuple("memory", "total available")
    monkeypatch.setattr(harness.psutil, "virtual_memory", lambda: memory(2**30, 2**30))
    args = ["--transactions", "5000000", "--parts", "notebook", "--out", str(tmp_path)]
    assert harness.main(args) == 2
    assert "impossible size for the notebook part" in capsys.readouterr().err
    assert _no_work_done(tmp_path)


# ------------------------------------------------------------------ helpers


def test_tree_memory_monitor_sums_the_children(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'b = bytearray(150 * 2**20); import time; time.sleep(1.0)'])\n"
        "a = bytearray(100 * 2**20)\n"
        "time.sleep(1.0)\n"
        "child.wait()\n"
    )
    run = harness.run_measured(
        "memory", [sys.executable, "-c", script], dict(os.environ), tmp_path / "log.txt"
    )
    assert run.ok
    assert run.peak_rss > 240 * 2**20  # both processes' 100 + 150 MiB at the same time
    assert run.seconds >= 1.0


def test_run_results_are_summarised_per_layer(tmp_path: Path) -> None:
    nodes = {
        "model.p.transactions_raw": "models/bronze/raw/transactions_raw.sql",
        "model.p.transactions_cleaned": "models/silver/transactions_cleaned.sql",
        "model.p.transaction_features": "models/gold/transaction_features.sql",
        "model.p.fraud_scores": "models/gold/fraud_scores.py",
        "model.p.isolation_forest_training_runs": "models/ml/isolation_forest_training_runs.py",
        "test.p.unique_x": "models/gold/_gold__models.yml",
    }
    results = [
        {"unique_id": uid, "execution_time": float(i + 1), "status": "success"}
        for i, uid in enumerate(nodes)
    ]
    (tmp_path / "run_results.json").write_text(
        json.dumps({"elapsed_time": 42.0, "results": results})
    )
    (tmp_path / "manifest.json").write_text(
        json.dumps({"nodes": {u: {"original_file_path": p} for u, p in nodes.items()}})
    )
    summary = harness.read_run_results(tmp_path)
    assert summary["elapsed_seconds"] == 42.0
    assert summary["layer_seconds"] == {
        "bronze": 1.0,
        "gold": 3.0,
        "scoring": 4.0,
        "silver": 2.0,
        "tests": 6.0,
        "training": 5.0,
    }
    assert summary["failures"] == []
    assert harness.read_run_results(tmp_path / "missing") == {}


def test_markdown_lists_rows_targets_and_machine() -> None:
    results = harness.Results(
        machine={**harness.machine_info(), "load_average_at_end": [0, 0, 0]},
        config={"transactions": 10, "customers": 1, "days": 1, "seed": 1, "parts": ["data"]},
        rows=[harness.Row("data", "full dbt build", 1.5, 10, 6.7, 100.0, "note")],
        targets=[
            harness.Target("t", ">= 1", "0.5", False, "why"),
            harness.Target("u", "x", "y", None),
        ],
    )
    text = harness.render_markdown(results)
    assert "| data | full dbt build | 1.50 | 10 | 7 | 100 | note |" in text
    assert "| t | >= 1 | 0.5 | MISSED | why |" in text
    assert "| u | x | y | n/a |  |" in text
    assert "logical cores" in text and "duckdb" in text


def test_measure_model_compares_sklearn_and_the_fast_evaluator() -> None:
    """The scoring measurements on a small isolation forest: exactness, batch rows/s, the
    scoring job both ways (identical scores and reasons), latency, and the batch target's
    'limited by' text built from those figures."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import IsolationForest
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from ml.features import FEATURE_COLUMNS
    from ml.registry import SelectedVersion as ResolvedModel

    X = pd.DataFrame(
        np.random.default_rng(0).lognormal(size=(400, 16)), columns=list(FEATURE_COLUMNS)
    )
    pipeline = Pipeline(
        [("scaler", StandardScaler()), ("model", IsolationForest(n_estimators=20, random_state=0))]
    ).fit(X)
    features = X.copy()
    features.insert(0, "customer_id", [f"C{i}" for i in range(len(X))])
    resolved = ResolvedModel("fraud_detection_isolation_forest", 1, "run", None, "pinned")
    spec = {"threads": 2, "latency_calls": 40}
    result = harness._measure_model(pipeline, resolved, features, spec, True, 0.2)
    assert result["exact_within_tolerance"]
    assert result["max_abs_difference"]["score_samples"] == 0.0
    assert set(result["batch"]) == {"sklearn", "fast_1_thread", "fast_threads"}
    assert result["scoring_job"]["max_abs_score_difference"] == 0.0
    assert result["scoring_job"]["reasons_identical"]
    assert result["latency"]["fast"]["calls"] == 40
    assert harness._batch_limits(result, 2).startswith("numba kernel")

    def figures(sklearn: float, one: float, two: float, load: float) -> dict[str, object]:
        rates = {"sklearn": sklearn, "fast_1_thread": one, "fast_threads": two}
        return {
            "batch": {k: {"rows_per_s_best": v} for k, v in rates.items()},
            "cpus": 2,
            "load_average": load,
        }

    busy = harness._batch_limits(figures(100.0, 200.0, 220.0, 3.5), 2)
    assert "2.0x scikit-learn" in busy and "1.10x the 1-thread speed" in busy
    assert "load average 3.5" in busy and ">= 3x needs" in busy
    free = harness._batch_limits(figures(100.0, 250.0, 480.0, 0.2), 2)
    assert "load average" not in free and ">= 3x needs" not in free


# ------------------------------------------------------------------ smoke run (tiny data)


@pytest.mark.e2e
def test_smoke_run_notebook_part_and_limit_equals_gold(tmp_path: Path) -> None:
    """The harness end to end on 3,000 transactions (< 60 s): generated data (pre-seeded here
    with 5 % dirty rows, which the harness reuses), dbt up to gold, the notebook and the
    project's model workers, results.json / results.md; then the one-query limit on the same
    files must equal the gold table dbt built."""

    out = tmp_path / "out"
    out.mkdir()
    config = BenchConfig(3000, 120, 30, harness.DEFAULT_SEED, ("notebook",), out)
    raw = Paths(out).data(config)
    args = [
        "--customers", "120", "--transactions", "3000", "--days", "30",
        "--dirty-rate", "0.05", "--seed", str(harness.DEFAULT_SEED),
        "--out", str(raw), "--quiet",
    ]  # fmt: skip
    seeded = generate.main(args)
    assert seeded == 0

    assert harness.main([*TINY, "--parts", "notebook", "--out", str(out)]) == 0

    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "ok"
    measured = {row["measurement"]: row for row in results["rows"]}
    assert "generate data (reused from an earlier run)" in measured
    notebook_rows = [r for r in results["rows"] if r["part"] == "notebook"]
    assert len(notebook_rows) == 4
    assert all(r["seconds"] and r["seconds"] > 0 for r in notebook_rows)
    assert all(r["peak_rss_mib"] and r["peak_rss_mib"] > 10 for r in notebook_rows)
    names = {t["name"]: t for t in results["targets"]}
    assert names["same work as the notebook >= 2x faster"]["met"] is None  # set at 10M
    assert results["machine"]["cores_logical"] == os.cpu_count()
    assert "| notebook |" in (out / "results.md").read_text()
    assert not (harness.PROJECT_ROOT / "data" / "raw" / "bench").exists()

    warehouse = Paths(out).warehouse_same_work / "fraud.duckdb"
    limit = harness.worker_limit(
        {
            "raw": str(raw),
            "vars": harness.project_vars(),
            "limit_db": str(tmp_path / "limit.duckdb"),
            "warehouse_file": str(warehouse),
        }
    )
    assert limit["rows"] > 100
    assert limit["rows"] == limit["gold_rows"] == limit["matched_rows"]
    assert limit["equal_to_gold"], limit["per_column_max_relative_difference"]
    shutil.rmtree(out / "work", ignore_errors=True)


@pytest.mark.e2e
def test_every_part_on_tiny_data(tmp_path: Path) -> None:
    """All six parts end to end on 3,000 transactions: full build with training, data path,
    limit, notebook, training, scoring with the fast evaluator, +1 % and the incremental build,
    whose training rows say what the retrain policy decided."""
    out = tmp_path / "out"
    assert harness.main([*TINY, "--latency-calls", "200", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "ok"
    assert {row["part"] for row in results["rows"]} == set(harness.PARTS)
    incremental = results["details"]["incremental"]
    assert incremental["added_rows"] > 0 and incremental["seconds"] > 0
    decisions = incremental["training_decisions"]
    # 1 % more transactions is below retrain_min_data_change: the registered model is kept
    assert decisions["isolation_forest"]["status"] == "skipped"
    assert "below retrain_min_data_change" in decisions["isolation_forest"]["skip_reason"]
    names = {t["name"]: t for t in results["targets"]}
    assert "retrain policy" in names["incremental +1 % <= 15 % of a full build"]["limited_by"]
    md = (out / "results.md").read_text()
    assert "| incremental |" in md and "| scoring |" in md
    shutil.rmtree(out / "work", ignore_errors=True)
