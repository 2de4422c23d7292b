"""The scoring service of one worker, without HTTP: validate → features from the state →
champion decision → state update → decision-log line, plus the shadow challenger and the
alias follower. ``ml.serving.app`` puts HTTP around it.

Models are immutable ``OnlineModel`` objects: a request takes the current champion once and
uses it to the end, and the follower replaces the reference only after the new version is
loaded and checked, so a swap drops no request and never mixes versions within one."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd

from ml import registry
from ml.serving.decision_log import DecisionLog
from ml.serving.metrics import Metrics
from ml.serving.model import OnlineModel, alias_version, load_model
from ml.serving.online_features import Transaction, cold_start_notes, compute_features
from ml.serving.requests import FraudReport, Limits
from ml.serving.state import FeatureState, ReportOutcome

logger = logging.getLogger(__name__)
SHADOW_QUEUE = 10_000  # challenger work waiting; beyond it shadow scoring is skipped (counted)


@dataclass
class ScoringService:
    state: FeatureState
    champion: OnlineModel | None
    log: DecisionLog
    limits: Limits = field(default_factory=Limits)
    challenger: OnlineModel | None = None
    sample: pd.DataFrame | None = None  # feature rows a new version is checked on
    metrics: Metrics = field(default_factory=Metrics)
    # challenger work: the transaction, its features and the microseconds they took
    _shadow: asyncio.Queue[tuple[Transaction, dict[str, Any], int]] | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.champion is not None

    def models(self) -> dict[str, tuple[str, int]]:
        out = {}
        for role, model in (("champion", self.champion), ("challenger", self.challenger)):
            if model is not None:
                out[role] = (model.name, model.version)
        return out

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self, alias_poll_seconds: float | None = None) -> None:
        await self.log.start()
        self._shadow = asyncio.Queue(SHADOW_QUEUE)
        self._tasks.append(asyncio.create_task(self._shadow_worker()))
        if alias_poll_seconds:
            self._tasks.append(asyncio.create_task(self._follow_aliases(alias_poll_seconds)))

    async def stop(self) -> None:
        if self._shadow is not None:
            await asyncio.wait_for(self._drain_shadow(), timeout=5)
        for task in self._tasks:
            task.cancel()
        await self.log.close()

    async def _drain_shadow(self) -> None:
        assert self._shadow is not None
        while not self._shadow.empty():
            await asyncio.sleep(0.01)

    # -- scoring ------------------------------------------------------------------------------
    def _decide(
        self, model: OnlineModel, transactions: Sequence[Transaction]
    ) -> tuple[list[dict[str, Any]], list[bytes]]:
        """The features of each transaction in turn (each reads the state the earlier ones
        updated), then one model call for all of them (``OnlineModel.decide_many``). A
        decision's ``decision_us`` is its own history + features time plus its share of the
        model call."""
        rows, notes, feature_ns = [], [], []
        for txn in transactions:
            started = time.perf_counter_ns()
            history, _ = self.state.history_and_add(txn)  # a retried id is scored, counted once
            rows.append(compute_features(txn, history))
            notes.append(cold_start_notes(history))
            feature_ns.append(time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        decisions = model.decide_many(rows, notes)
        model_ns = (time.perf_counter_ns() - started) // max(len(rows), 1)
        replies, lines = [], []
        shadow = self._shadow if self.challenger is not None else None
        for txn, features, decision, ns in zip(
            transactions, rows, decisions, feature_ns, strict=True
        ):
            replies.append(
                {
                    "transaction_id": txn.transaction_id,
                    "fraud_probability": decision.fraud_probability,
                    "is_flagged": decision.is_flagged,
                    "risk_band": decision.risk_band,
                    "reasons": decision.reasons,
                    "model_name": model.name,
                    "model_version": model.version,
                }
            )
            if shadow is not None:
                try:
                    shadow.put_nowait((txn, features, _micros(ns)))
                except asyncio.QueueFull:
                    self.metrics.error("shadow_queue_full")
            lines.append(
                self._line(txn, model, "champion", decision, features, _micros(ns + model_ns))
            )
        return replies, lines

    def _line(
        self,
        txn: Transaction,
        model: OnlineModel,
        role: str,
        decision: Any,
        f: Any,
        decision_us: int,
    ) -> bytes:
        """One decision-log line; ``decision_us``: the service's own time to decide, features +
        score + reasons, in microseconds (a challenger: the champion's feature time + its own
        score and reasons; queueing and the log write are not in it)."""
        return orjson.dumps(
            {
                "decision_id": str(uuid.uuid4()),
                "decided_at": time.time(),
                "role": role,
                "transaction_id": txn.transaction_id,
                "customer_id": txn.customer_id,
                "merchant_id": txn.merchant_id,
                "transaction_at_us": txn.at,
                "model_name": model.name,
                "model_version": model.version,
                "model_alias": model.alias,
                "model_run_id": model.run_id,
                "decision_threshold": model.threshold,
                "fraud_probability": decision.fraud_probability,
                "is_flagged": decision.is_flagged,
                "risk_band": decision.risk_band,
                "reasons": decision.reasons,
                "features": f,
                "decision_us": decision_us,
            }
        )

    async def score(self, transactions: Sequence[Transaction]) -> list[dict[str, Any]]:
        """Decide on each transaction with the champion; return once logged (flush policy)."""
        model = self.champion
        if model is None:
            raise RuntimeError("no champion loaded")
        replies, lines = self._decide(model, transactions)
        self.metrics.transactions += len(replies)
        self.metrics.flagged += sum(int(reply["is_flagged"]) for reply in replies)
        await self.log.append(lines)
        return replies

    def report(self, report: FraudReport) -> ReportOutcome:
        return self.state.add_report(report.transaction_id, report.reported_at)

    async def _shadow_worker(self) -> None:
        assert self._shadow is not None
        while True:
            txn, features, features_us = await self._shadow.get()
            model = self.challenger
            try:
                if model is not None:
                    started = time.perf_counter_ns()
                    decision = model.decide(features)
                    own_us = _micros(time.perf_counter_ns() - started)
                    line = self._line(
                        txn, model, "challenger", decision, features, features_us + own_us
                    )
                    await self.log.append([line], wait=False)
                    self.metrics.shadow_scored += 1
            except Exception:  # the challenger never fails a champion request
                self.metrics.shadow_errors += 1
                logger.exception("challenger scoring failed")
            finally:
                self._shadow.task_done()
            await asyncio.sleep(0)

    # -- alias follower -----------------------------------------------------------------------
    async def refresh_models(self) -> list[str]:
        """Reload any role whose alias moved (load + check in a thread, then swap)."""
        changes: list[str] = []
        for alias in (registry.CHAMPION_ALIAS, registry.CHALLENGER_ALIAS):
            current = self.champion if alias == registry.CHAMPION_ALIAS else self.challenger
            version = await asyncio.to_thread(alias_version, alias)
            if version is None:
                if alias == registry.CHALLENGER_ALIAS and current is not None:
                    self.challenger = None
                    changes.append("challenger removed")
                continue
            if current is not None and int(version.version) == current.version:
                continue
            if self.sample is None:
                raise RuntimeError("no sample rows to check a new model version on")
            try:
                model = await asyncio.to_thread(load_model, alias, version, self.sample)
            except Exception:
                self.metrics.error("model_load")
                logger.exception("new %s version %s not swapped in", alias, version.version)
                continue
            if alias == registry.CHAMPION_ALIAS:
                self.champion = model
            else:
                self.challenger = model
            self.metrics.model_swaps += 1
            changes.append(f"{alias} -> v{model.version}")
        return changes

    async def _follow_aliases(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                for change in await self.refresh_models():
                    logger.warning("model alias moved: %s", change)
            except Exception:
                self.metrics.error("alias_poll")
                logger.exception("alias poll failed")


def _micros(nanoseconds: int) -> int:
    """Whole microseconds of a ``perf_counter_ns`` difference."""
    return nanoseconds // 1000
