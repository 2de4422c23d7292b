"""fraud-monitor: the monitoring job (usage and exit codes: README "Promotion and monitoring")."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from ml import registry
from ml import warehouse as wh_mod
from ml.monitoring import realised as realised_mod
from ml.monitoring.checks import Result, evaluate, load_thresholds
from ml.monitoring.inputs import load_reference, parse_as_of, read_warehouse, resolve_target
from ml.monitoring.report import write_outputs
from ml.monitoring.statistics import EXIT_BREACH, EXIT_ERROR, EXIT_NO_DATA, MonitoringError
from ml.settings import MONITORING_FILE, MONITORING_OUTPUT_DIR, from_env

EPILOG = """exit codes:
  0  all checks within thresholds
  1  a threshold breached (anomaly rate outside its band, feature or score PSI above the
     threshold (drifted features named), volume drop, drift reference missing)
  2  usage or infrastructure error (target, warehouse, registry, missing relation)
  3  no predictions in the window (the report is still written)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraud-monitor",
        description="Monitor a registered fraud model: prediction volume, anomaly rate, feature "
        "and score drift against its training reference. Writes report.html (self-contained), "
        "PNG charts and summary.json.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        help="registered model name or random_forest / isolation_forest / "
        "transaction_classifier (default: the random forest's champion, else the isolation "
        "forest's champion, else its latest version). The transaction classifier adds its "
        "realised precision and card precision@k per day as labels arrive",
    )
    parser.add_argument("--version", type=int, help="model version (default: as --model says)")
    parser.add_argument(
        "--days", type=int, help="window length in days (default: window_days of the config)"
    )
    parser.add_argument(
        "--as-of",
        help="window end, ISO date or timestamp (default: latest prediction_timestamp)",
    )
    parser.add_argument(
        "--output",
        default=str(MONITORING_OUTPUT_DIR),
        help="report folder, overwritten (default: reports/monitoring/latest)",
    )
    parser.add_argument("--target", help="dbt target (default: DBT_TARGET or the profile's)")
    parser.add_argument("--profiles-dir", help="folder of profiles.yml (default: dbt's lookup)")
    parser.add_argument(
        "--config", default=str(MONITORING_FILE), help="thresholds (default: config/monitoring.yml)"
    )
    parser.add_argument("--json", action="store_true", help="print summary.json to stdout")
    return parser


def _print_text(result: Result, report: Path) -> None:
    target = result.target
    version = (result.observed.version if result.observed else None) or target.version
    print(f"model {target.model_name} v{version} ({target.resolved_by}); {result.warehouse}")
    for message in result.messages:
        print(message)
    if result.total:
        cal = result.calendar
        print(
            f"{result.total} predictions over {len(cal)} day(s), "
            f"anomaly rate {cal['anomalies'].sum() / result.total:.2%}"
        )
    for check in result.checks:
        value = "" if check.value is None else f" {check.value:.4f}"
        print(f"  {check.status.upper():7} {check.name}{value}: {check.message}")
    if result.exit_code == EXIT_BREACH:
        names = ", ".join(check.name for check in result.breaches)
        print(f"THRESHOLD BREACHED: {names}")
    print(f"report: {report}")


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``fraud-monitor``; returns the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        limits = load_thresholds(args.config)
        days = args.days if args.days is not None else limits.window_days
        if days <= 0:
            raise MonitoringError("--days must be positive")
        as_of = parse_as_of(args.as_of) if args.as_of else None
        registry.configure()
        import mlflow

        client = mlflow.MlflowClient()
        target = resolve_target(client, args.model, args.version)
        realised = None
        with wh_mod.connect(args.target, profiles_dir=args.profiles_dir, read_only=True) as wh:
            described = wh.description
            observed = read_warehouse(wh, target, days, as_of)
            if target.version is None:
                target.version = observed.version
            reference, problem = load_reference(client, target)
            if realised_mod.applies(target.model_name):
                run = client.get_run(target.run_id) if target.run_id else None
                realised = realised_mod.read_realised(
                    wh,
                    target.model_name,
                    observed.version,
                    observed.window_start,
                    observed.window_end,
                    dict(run.data.metrics) if run else {},
                )
        result = Result(
            target=target,
            limits=limits,
            warehouse=described,
            days=days,
            generated_at=datetime.now(UTC),
            observed=observed,
            reference_problem=problem,
        )
        evaluate(result, reference)
        if realised is not None:
            result.checks += realised_mod.judge(realised)
            result.realised = realised_mod.summary(realised)
        report, summary = write_outputs(result, reference, Path(args.output).resolve())
    except (MonitoringError, wh_mod.WarehouseError) as exc:
        print(f"fraud-monitor: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # registry unreachable, driver errors
        if from_env("debug"):
            traceback.print_exc()
        print(f"fraud-monitor: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    else:
        _print_text(result, report)
    if result.exit_code == EXIT_NO_DATA and args.json:
        print(f"fraud-monitor: {result.messages[0]}", file=sys.stderr)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
