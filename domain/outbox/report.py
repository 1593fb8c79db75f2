"""What a drain did (``DrainReport``), and how it reads to operators: headline, summary
markdown, the summary dict of a run and the rule for when a run has failed."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from domain.clock import operator_time
from domain.outbox.types import BatchReport, DeliveryOutcome, OutboxOverview, Result
from models.base import utcnow

LISTED = 20  # entries per list in the summary markdown
KIND_WORDS = {"reserve": "reservation", "activate": "activation", "cancel": "cancellation"}
_KINDS = ("reserve", "activate", "cancel")
_ROWS = (
    ("delivered", Result.DONE),
    ("will be retried", Result.RETRY),
    ("conflict (needs a person)", Result.CONFLICT),
    ("dead letter (gave up)", Result.DEAD),
    ("unexpected error", Result.ERROR),
)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not values:
        return None
    k = max(0, min(len(values) - 1, round(pct / 100 * len(values) + 0.5) - 1))
    return values[k]


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _at(ts: datetime | None, tz: tzinfo) -> str:
    if ts is None:
        return "?"
    return operator_time(ts, tz, seconds=True)


def _first(outcomes: Sequence[DeliveryOutcome]) -> str:
    more = f" (and {len(outcomes) - 1} more)" if len(outcomes) > 1 else ""
    return f"{outcomes[0].message}{more}"


def _who(o: DeliveryOutcome) -> str:
    res = f"reservation {o.reservation_id}" if o.reservation_id else f"event {o.event_id}"
    return f"{res} ({o.kind.value} of client code {o.code or '?'})"


def _listing(
    title: str, items: Sequence[DeliveryOutcome], line: Callable[[DeliveryOutcome], str]
) -> list[str]:
    if not items:
        return []
    out = ["", f"## {title}", ""]
    out += [f"- {line(o)}" for o in items[:LISTED]]
    if len(items) > LISTED:
        out.append(f"- … and {len(items) - LISTED} more")
    return out


@dataclass
class DrainReport:
    """Everything one drain (a flow run, or ``drain``) did, ready for logs and artifacts."""

    worker_id: str
    concurrency: int = 1
    batches: int = 0
    claimed: int = 0
    superseded: int = 0
    outcomes: list[DeliveryOutcome] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str = "idle"  # idle | max_batches | deadline | systemic_failure

    def add(self, batch: BatchReport) -> None:
        self.batches += 1
        self.claimed += batch.claimed
        self.superseded += batch.superseded
        self.outcomes.extend(batch.outcomes)
        self.seconds += batch.seconds
        self.concurrency = max(self.concurrency, batch.concurrency)

    def of(self, result: Result) -> list[DeliveryOutcome]:
        return [o for o in self.outcomes if o.result is result]

    @property
    def delivered(self) -> int:
        return len(self.of(Result.DONE))

    @property
    def retried(self) -> int:
        return len(self.of(Result.RETRY))

    @property
    def conflicts(self) -> int:
        return len(self.of(Result.CONFLICT))

    @property
    def dead(self) -> int:
        return len(self.of(Result.DEAD))

    @property
    def errors(self) -> int:
        return len(self.of(Result.ERROR))

    @property
    def by_kind(self) -> dict[str, dict[str, int]]:
        """{kind: {result: n}} for the outcomes of this drain."""
        out: dict[str, Counter[str]] = {}
        for o in self.outcomes:
            out.setdefault(o.kind.value, Counter())[o.result.value] += 1
        return {k: dict(v) for k, v in sorted(out.items())}

    @property
    def lags(self) -> list[float]:
        return sorted(x for o in self.outcomes if (x := o.lag_seconds) is not None)

    @property
    def lag_median(self) -> float | None:
        lags = self.lags
        return statistics.median(lags) if lags else None

    @property
    def lag_p95(self) -> float | None:
        return percentile(self.lags, 95)

    @property
    def events_per_second(self) -> float:
        return len(self.outcomes) / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed_unexpectedly(self) -> bool:
        return self.errors > 0

    @property
    def needs_attention(self) -> bool:
        """Conflicts, dead letters or errors: worth a warning rather than an info line."""
        return bool(self.conflicts or self.dead or self.errors)

    def headline(self, tz: tzinfo) -> str:
        """One sentence an operator understands: what reached OZmap, what will, what will not."""
        parts = []
        if self.delivered:
            detail = ", ".join(
                plural(v["done"], KIND_WORDS.get(k, k))
                for k, v in self.by_kind.items()
                if v.get("done")
            )
            parts.append(f"delivered {plural(self.delivered, 'change')} to OZmap ({detail})")
        else:
            parts.append("nothing was delivered to OZmap")
        retried = self.of(Result.RETRY)
        if retried:
            first = min((o.next_attempt_at for o in retried if o.next_attempt_at), default=None)
            parts.append(f"{len(retried)} will be retried from {_at(first, tz)}")
        if conflicts := self.of(Result.CONFLICT):
            parts.append(f"{plural(len(conflicts), 'conflict')}: {_first(conflicts)}")
        if dead := self.of(Result.DEAD):
            parts.append(
                f"{plural(len(dead), 'dead letter')} (gave up after the last attempt): "
                f"{_first(dead)}"
            )
        if errors := self.of(Result.ERROR):
            parts.append(f"{len(errors)} failed unexpectedly: {_first(errors)}")
        if self.superseded:
            parts.append(f"{self.superseded} skipped because a later cancellation replaced them")
        return ", ".join(parts)

    def summary_markdown(
        self, after: OutboxOverview, tz: tzinfo, run_name: str | None = None
    ) -> str:
        """The run's summary artifact: counts by kind, lag, what needs a person, the outbox."""
        by_kind = self.by_kind
        lines = [
            f"# OZmap sync{f' — {run_name}' if run_name else ''}",
            "",
            f"**{self.headline(tz)}.**",
            "",
            "| | " + " | ".join(KIND_WORDS[k] + "s" for k in _KINDS) + " | total |",
            "|---|" + "---:|" * (len(_KINDS) + 1),
        ]
        for label, result in _ROWS:
            counts = [by_kind.get(k, {}).get(result.value, 0) for k in _KINDS]
            lines.append(f"| {label} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
        lines.append(f"| skipped (superseded) | | | | {self.superseded} |")
        med, p95 = self.lag_median, self.lag_p95
        lag = f"median {med:.1f} s, p95 {p95:.1f} s" if med is not None and p95 is not None else "—"
        lines += [
            "",
            f"- Lag from the ERP action to OZmap, for what was delivered: {lag}",
            f"- {len(self.outcomes)} changes handled in {self.seconds:.1f} s "
            f"({self.events_per_second:.1f}/s, {self.concurrency} at a time, "
            f"{plural(self.batches, 'batch', 'batches')}; stopped: {self.stopped})",
        ]
        lines += _listing(
            "Conflicts — OZmap refused; never retried", self.of(Result.CONFLICT),
            lambda o: o.message,
        )  # fmt: skip
        lines += _listing(
            "Dead letters — OZmap did not take them after the last attempt", self.of(Result.DEAD),
            lambda o: f"{_who(o)} after {o.attempts} attempts: {o.message}",
        )  # fmt: skip
        lines += _listing(
            "Unexpected errors", self.of(Result.ERROR), lambda o: f"{_who(o)}: {o.message}"
        )
        lines += _listing(
            "Will be retried", self.of(Result.RETRY),
            lambda o: f"{_who(o)} at {_at(o.next_attempt_at, tz)} (attempt {o.attempts} "
            f"failed: {o.message[:200]})",
        )  # fmt: skip
        lines += ["", "## Outbox after this run", "", *_overview_table(after)]
        return "\n".join(lines) + "\n"

    def failure(self, *, fail_on_dead_letters: bool, see: str) -> str | None:
        """Why the run that did this drain failed (``see`` names the summary), or None.

        A run fails on unexpected errors and, unless told otherwise, on new dead letters; a
        conflict is a business outcome shown on the reservation, not a failed run.
        """
        if self.errors:
            return (
                f"{plural(self.errors, 'change')} failed unexpectedly (see {see}): "
                f"{_first(self.of(Result.ERROR))}"
            )
        if self.dead and fail_on_dead_letters:
            return (
                f"{plural(self.dead, 'new dead letter')}: OZmap did not take "
                f"{'it' if self.dead == 1 else 'them'} after the last attempt; the ERP and "
                f"OZmap disagree until someone acts (see {see}): {_first(self.of(Result.DEAD))}"
            )
        return None

    def summary(self, after: OutboxOverview) -> dict[str, Any]:
        """The run's return value: counts, lag, what is still due, why it stopped."""
        return {
            "delivered": self.delivered,
            "retried": self.retried,
            "conflicts": self.conflicts,
            "dead": self.dead,
            "errors": self.errors,
            "superseded": self.superseded,
            "batches": self.batches,
            "by_kind": self.by_kind,
            "lag_median_s": self.lag_median,
            "lag_p95_s": self.lag_p95,
            "still_due": after.due,
            "stopped": self.stopped,
        }

    def needing_a_person(self) -> list[tuple[str, DeliveryOutcome]]:
        """(event name, outcome) for each conflict and dead letter, for automations."""
        return [
            *(("conflict", o) for o in self.of(Result.CONFLICT)),
            *(("dead-letter", o) for o in self.of(Result.DEAD)),
        ]


def outage_failure(
    after: OutboxOverview, *, threshold: timedelta, tz: tzinfo, now: datetime | None = None
) -> str | None:
    """ "OZmap unreachable since HH:MM" once deliveries have failed for ``threshold``, else None.

    A run that only retries stays Completed otherwise, and nobody would hear of the outage.
    """
    since = after.unreachable_since
    if since is None or (now or utcnow()) - since < threshold:
        return None
    waiting = plural(after.due + after.scheduled, "change")
    return (
        f"OZmap unreachable since {operator_time(since, tz)}: no delivery has reached it for "
        f"{threshold.total_seconds() / 60:g} minutes or more; {waiting} wait in the outbox "
        "and will be delivered once it answers"
    )


def _overview_table(after: OutboxOverview) -> list[str]:
    oldest = f"{after.oldest_due_seconds:.0f} s" if after.oldest_due_seconds is not None else "—"
    return [
        "| due now | backing off | in progress | held behind a failed change | conflicts | "
        "dead letters | oldest due |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {after.due} | {after.scheduled} | {after.in_progress} | {after.held} | "
        f"{after.conflicts} | {after.dead} | {oldest} |",
        *_waiting(after),
    ]


def _waiting(after: OutboxOverview) -> list[str]:
    """The dead letters and conflicts waiting for an admin, and what to do about them."""
    if not after.waiting:
        return []
    shown = len(after.waiting)
    more = after.conflicts + after.dead - shown
    return [
        "",
        "### Waiting for an admin (dead letters and conflicts)",
        "",
        *(f"- {line}" for line in after.waiting),
        *([f"- … and {more} more"] if more > 0 else []),
        "",
        "Requeue with `erp-ozmap outbox requeue ID…` (or `POST /outbox/{id}/requeue`), or "
        "close with `erp-ozmap outbox discard ID… --reason …`.",
    ]
