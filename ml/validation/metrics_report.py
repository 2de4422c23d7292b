"""``fraud-metrics``: evaluation metrics of the registered fraud models, read from MLflow.

For each model (random forest, isolation forest) it prints the latest registered version and,
when another version holds the champion alias, that one too: precision, recall, F1, AUC-ROC,
average precision, accuracy, the number of customers the metrics were computed on
(``n_test``: the held-out test split for the random forest, every customer for the isolation
forest), customers and fraudulent customers in the training snapshot, and fit time. The
metrics are the ones the training run logged (``ml.training``), nothing is recomputed.

    fraud-metrics                      # text table
    fraud-metrics --format markdown    # for the README
    fraud-metrics --format json
    fraud-metrics --models random_forest --alias champion
    fraud-metrics side-by-side         # transaction classifier vs customer random forest
                                       # on the same test transactions (side_by_side.py)
    fraud-metrics compare-families     # every transaction-classifier family on one split

Exit status: 0, or 1 when no model has a registered version.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ml import registry

METRIC_COLUMNS: tuple[str, ...] = (
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "average_precision",
    "accuracy",
)


@dataclass(frozen=True)
class VersionMetrics:
    """One registered version and the metrics of its training run."""

    model: str
    version: int
    role: str
    run_id: str | None
    evaluation_set: str | None
    n_customers: int | None
    n_fraud_customers: int | None
    n_evaluated: int | None
    precision: float | None
    recall: float | None
    f1: float | None
    roc_auc: float | None
    average_precision: float | None
    accuracy: float | None
    fit_seconds: float | None


def _short_name(name: str) -> str:
    return name.rsplit(".", 1)[-1].removeprefix("fraud_detection_")


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


def version_metrics(client: Any, name: str, version: int, role: str) -> VersionMetrics:
    """Metrics of one version, from the run that produced it."""
    mv = client.get_model_version(name, str(version))
    metrics: dict[str, float] = {}
    params: dict[str, str] = {}
    if mv.run_id:
        run = client.get_run(mv.run_id)
        metrics = dict(run.data.metrics)
        params = dict(run.data.params)
    n_customers = metrics.get("n_customers")
    return VersionMetrics(
        model=_short_name(name),
        version=int(mv.version),
        role=role,
        run_id=mv.run_id,
        evaluation_set=params.get("evaluation_set"),
        n_customers=_int(n_customers),
        n_fraud_customers=_int(metrics.get("n_fraud_customers")),
        n_evaluated=_int(metrics.get("n_test", n_customers)),
        fit_seconds=metrics.get("fit_seconds"),
        **{key: metrics.get(key) for key in METRIC_COLUMNS},
    )


def collect(
    names: Sequence[str], alias: str = registry.CHAMPION_ALIAS, client: Any | None = None
) -> list[VersionMetrics]:
    """Latest version (and the ``alias`` version when different) of each model name."""
    from mlflow.tracking import MlflowClient

    client = client or MlflowClient()
    rows: list[VersionMetrics] = []
    for name in names:
        latest = registry.latest_version(name, client)
        aliased = registry.version_by_alias(name, alias, client)
        if latest is None:
            continue
        if aliased is not None and aliased.version == latest.version:
            rows.append(version_metrics(client, name, int(latest.version), f"latest, {alias}"))
            continue
        rows.append(version_metrics(client, name, int(latest.version), "latest"))
        if aliased is not None:
            rows.append(version_metrics(client, name, int(aliased.version), alias))
    return rows


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


HEADERS: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("version", "version"),
    ("role", "role"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("f1", "F1"),
    ("roc_auc", "AUC-ROC"),
    ("average_precision", "avg precision"),
    ("accuracy", "accuracy"),
    ("n_evaluated", "n evaluated"),
    ("n_customers", "n customers"),
    ("n_fraud_customers", "n fraudulent"),
    ("evaluation_set", "evaluated on"),
    ("fit_seconds", "fit s"),
)


def render(rows: Sequence[VersionMetrics], fmt: str = "text") -> str:
    """``text`` (aligned columns), ``markdown`` (a GitHub table) or ``json``."""
    if fmt == "json":
        return json.dumps([asdict(row) for row in rows], indent=2)
    table = [[_cell(getattr(row, key)) for key, _ in HEADERS] for row in rows]
    titles = [title for _, title in HEADERS]
    if fmt == "markdown":
        lines = ["| " + " | ".join(titles) + " |", "|" + "|".join("---" for _ in titles) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in table]
        return "\n".join(lines)
    widths = [max(len(t), *(len(r[i]) for r in table)) for i, t in enumerate(titles)]
    lines = ["  ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["side-by-side"]:
        from ml.validation.side_by_side import main as side_by_side

        return side_by_side(argv[1:])
    if argv[:1] == ["compare-families"]:
        from ml.validation.family_comparison import main as compare_families

        return compare_families(argv[1:])
    parser = argparse.ArgumentParser(
        prog="fraud-metrics",
        description="Evaluation metrics of the registered fraud models, from their MLflow runs.",
    )
    selection = registry.ModelSelection.from_settings({})  # what scoring uses
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(selection.model_names),
        help="registered model names or short names (default: setting scoring_model_names)",
    )
    parser.add_argument(
        "--alias", default=selection.alias, help="default: setting scoring_alias (champion)"
    )
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    parser.add_argument("--tracking-uri", default=None, help="default: see ml/registry.py")
    parser.add_argument("--registry-uri", default=None)
    args = parser.parse_args(argv)

    settings = registry.configure(args.tracking_uri, args.registry_uri)
    rows = collect([registry.resolve_model_name(n) for n in args.models], args.alias)
    if not rows:
        print(
            f"No registered version of {', '.join(args.models)} in {settings.registry_uri}: "
            "train first (dbt build).",
            file=sys.stderr,
        )
        return 1
    print(render(rows, args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
