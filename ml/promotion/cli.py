"""fraud-promote: promote or roll back a model version (README "Promotion and monitoring")."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence

from ml import registry
from ml import warehouse as wh_mod
from ml.promotion.decision import Context, promote, rollback
from ml.promotion.locking import default_actor, local_lock_path, registry_lock
from ml.promotion.outcome import DEFAULT_LOCK_TIMEOUT_S, EXIT_ERROR, PromotionError, render_text
from ml.registry import RegistryError
from ml.settings import PROMOTION_GATES_FILE, from_env
from ml.validation.gates import GateConfigError, load_gate_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraud-promote",
        description="Promote a registered model version to champion behind quality gates, or "
        "roll back to the previous champion. Every decision (not dry runs) is appended to "
        "audit.model_promotions in the dbt target's warehouse.",
        epilog="exit codes: 0 promoted / rolled back (or would be, with --dry-run), or no "
        "candidate: --candidate latest of a model the project trains finds no registered "
        "version (its training was skipped, e.g. too few fraudulent customers; recorded); "
        "1 refused: a gate failed, nothing changed; 2 error: bad arguments, model / version / "
        "alias missing, nothing to roll back to, registry or warehouse unreachable.",
    )
    parser.add_argument(
        "--model",
        default=registry.RANDOM_FOREST_MODEL,
        help="registered model name or short name random_forest / isolation_forest "
        "(default: random_forest)",
    )
    pick = parser.add_mutually_exclusive_group()
    pick.add_argument(
        "--candidate", metavar="SPEC", help="'latest' (default), a version number or an alias"
    )
    pick.add_argument("--version", type=int, metavar="N", help="candidate version number")
    pick.add_argument("--alias", metavar="ALIAS", help="candidate alias, e.g. challenger")
    pick.add_argument(
        "--rollback",
        action="store_true",
        help="make the 'previous' version champion again instead of promoting",
    )
    parser.add_argument("--dry-run", action="store_true", help="decide and print; change nothing")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    parser.add_argument("--actor", help="who decides (default: $USER)")
    parser.add_argument(
        "--config", default=str(PROMOTION_GATES_FILE), help="gate file (default: %(default)s)"
    )
    parser.add_argument("--target", help="dbt target of the audit warehouse (default: DBT_TARGET)")
    parser.add_argument("--profiles-dir", help="folder of profiles.yml (default: dbt's lookup)")
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=DEFAULT_LOCK_TIMEOUT_S,
        help="seconds to wait for a concurrent promotion (default: %(default)s)",
    )
    return parser


def _candidate_spec(args: argparse.Namespace) -> str:
    if args.version is not None:
        return str(args.version)
    if args.alias:
        return str(args.alias)
    return str(args.candidate or "latest").strip()


def _fail(message: str, as_json: bool) -> int:
    print(f"fraud-promote: error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"decision": None, "error": message, "exit_code": EXIT_ERROR}))
    return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``fraud-promote``; returns the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    model_name = registry.resolve_model_name(args.model)
    try:
        config = load_gate_config(args.config, model_name)
        settings = registry.configure()
        import mlflow

        ctx = Context(
            client=mlflow.MlflowClient(),
            model_name=model_name,
            config=config,
            actor=args.actor or default_actor(),
            dry_run=args.dry_run,
            target=args.target,
            profiles_dir=args.profiles_dir,
        )
        lock_path = None if args.dry_run else local_lock_path(settings.registry_uri)
        with registry_lock(lock_path, args.lock_timeout):
            outcome = rollback(ctx) if args.rollback else promote(ctx, _candidate_spec(args))
    except (PromotionError, GateConfigError, RegistryError, wh_mod.WarehouseError) as exc:
        return _fail(str(exc), args.json)
    except Exception as exc:  # registry unreachable, driver errors, ...
        if from_env("debug"):
            traceback.print_exc()
        return _fail(f"{type(exc).__name__}: {exc}", args.json)
    if args.json:
        print(json.dumps(outcome.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        print(render_text(outcome))
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
