"""``fraud-serve``: load the online state from the warehouse, the transaction classifier's
@champion (and @challenger) from the registry, and serve ``ml.serving.app`` on uvicorn.
``--workers N`` (FRAUD_SERVE_WORKERS, needs FRAUD_SERVE_STATE=redis://...): the state is
bootstrapped once in Redis, then N worker processes serve one socket (``ml.serving.workers``).

Exit 2 when it cannot start: a setting is invalid, the warehouse cannot be read, or no version
has @champion on a target that is not a development one (``config.FALLBACK_TARGETS``: there,
the latest registered version is served with a loud warning, as batch scoring does).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

import pandas as pd
from redis import RedisError

from ml import registry
from ml.serving.bootstrap import bootstrap
from ml.serving.config import ServeSettings, SettingError
from ml.serving.decision_log import DecisionLog
from ml.serving.model import NoModelError, OnlineModel, alias_version, load_model
from ml.serving.redis_state import RedisState
from ml.serving.service import ScoringService
from ml.serving.state import FeatureState, InMemoryState
from ml.transaction_model import MODEL_NAME
from ml.warehouse import WarehouseError

logger = logging.getLogger("fraud-serve")
SAMPLE_ROWS = 200
UNVALIDATED_ALIAS = "latest_unvalidated"
UVICORN_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "httptools",
    "log_level": "warning",
    "access_log": False,
    "timeout_keep_alive": 5,
}


def make_state(settings: ServeSettings) -> FeatureState:
    """The in-process state, or the Redis one shared by the workers of ``state_prefix``."""
    if settings.uses_redis:
        return RedisState(settings.state_url, settings.state_prefix, settings.report_retention_days)
    return InMemoryState(settings.report_retention_days)


def bootstrap_state(state: FeatureState, warehouse: Any, settings: ServeSettings) -> None:
    """Fill the state from the warehouse (``settings.bootstrap``); a Redis state only once: its
    workers keep it current, a restart must not replay the warehouse over newer events (an
    interrupted bootstrap, never marked, is redone: transactions and reports are idempotent)."""
    if not settings.bootstrap:
        return
    if isinstance(state, RedisState):
        done = state.bootstrapped()
        if done is not None:
            logger.warning("Redis state %s:* already bootstrapped (%s)", state.prefix, done)
            return
    started = time.perf_counter()
    summary = bootstrap(state, warehouse, settings.report_retention_days)
    if isinstance(state, RedisState):
        state.mark_bootstrapped(
            f"{summary} at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
        )
    logger.warning("state bootstrapped in %.1f s: %s", time.perf_counter() - started, summary)


def no_champion(settings: ServeSettings) -> NoModelError:
    return NoModelError(
        f"refusing to start: no version of {MODEL_NAME} has alias "
        f"@{registry.CHAMPION_ALIAS} and target {settings.target!r} is a production target "
        "(promote one with fraud-promote --model transaction_classifier)"
    )


def check_champion(settings: ServeSettings) -> None:
    """Refuse to start on a production target without @champion (NoModelError)."""
    registry.configure()
    if alias_version(registry.CHAMPION_ALIAS) is None and not settings.allows_unpromoted:
        raise no_champion(settings)


def load_champion(settings: ServeSettings, sample: pd.DataFrame) -> OnlineModel:
    version = alias_version(registry.CHAMPION_ALIAS)
    if version is not None:
        return load_model(registry.CHAMPION_ALIAS, version, sample)
    if not settings.allows_unpromoted:
        raise no_champion(settings)
    latest = registry.latest_version(MODEL_NAME)
    if latest is None:
        raise NoModelError(f"no version of {MODEL_NAME} is registered: run `make run` first")
    logger.warning(
        "SERVING AN UNVALIDATED MODEL: no @%s on %s; target %r allows the latest version (v%s)",
        registry.CHAMPION_ALIAS,
        MODEL_NAME,
        settings.target,
        latest.version,
    )
    return load_model(UNVALIDATED_ALIAS, latest, sample)


def build_service(settings: ServeSettings) -> ScoringService:
    from ml.warehouse import connect

    check_champion(settings)
    state = make_state(settings)
    with connect(settings.target, read_only=True) as warehouse:
        bootstrap_state(state, warehouse, settings)
        features = warehouse.relation("gold", "transaction_risk_features")
        sample = warehouse.query(
            f"select * from {features} order by transaction_at desc limit {SAMPLE_ROWS}"
        )
    champion = load_champion(settings, sample)
    challenger_version = alias_version(registry.CHALLENGER_ALIAS)
    challenger = (
        load_model(registry.CHALLENGER_ALIAS, challenger_version, sample)
        if challenger_version is not None
        else None
    )
    log = DecisionLog(settings.log_dir, sync=settings.log_sync, max_bytes=settings.log_max_bytes)
    return ScoringService(
        state, champion, log, settings.limits, challenger=challenger, sample=sample
    )


def serving_app(service: ScoringService, settings: ServeSettings, where: str) -> Any:
    """The HTTP app of ``service`` with the settings' limits, announced on stdout."""
    from ml.serving.app import create_app

    app = create_app(
        service,
        token=settings.token,
        max_body_bytes=settings.max_body_bytes,
        alias_poll_seconds=settings.alias_poll_seconds,
    )
    assert service.champion is not None
    print(
        f"fraud-serve: {service.champion.name} v{service.champion.version} "
        f"(@{service.champion.alias}) {where} log={settings.log_dir}",
        flush=True,
    )
    return app


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fraud-serve", description=__doc__)
    parser.add_argument("--host", help="listen address (FRAUD_SERVE_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (FRAUD_SERVE_PORT, default 8765)")
    parser.add_argument(
        "--workers", type=int, help="worker processes (FRAUD_SERVE_WORKERS, default 1; >1: Redis)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        settings = ServeSettings.from_env()
        overrides: dict[str, Any] = {}
        if args.host:
            overrides["host"] = args.host
        if args.port:
            overrides["port"] = args.port
        if args.workers is not None:
            overrides["workers"] = args.workers
        if overrides:
            settings = ServeSettings(**{**settings.__dict__, **overrides})
        if settings.workers > 1:
            from ml.serving.workers import serve_workers

            return serve_workers(settings)
        service = build_service(settings)
    except (SettingError, NoModelError, WarehouseError) as exc:
        print(f"fraud-serve: {exc}", file=sys.stderr)
        return 2
    except RedisError as exc:
        print(f"fraud-serve: FRAUD_SERVE_STATE={settings.state_url}: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    app = serving_app(
        service, settings, f"on http://{settings.host}:{settings.port} state={settings.state_url}"
    )
    uvicorn.run(app, host=settings.host, port=settings.port, **UVICORN_OPTIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
