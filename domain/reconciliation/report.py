"""How a reconciliation run reads to people: summary, failure, discrepancy table, one line.

:class:`RunReport` holds the rules (what a summary and a failure say, what an event carries);
the flow publishes them as Prefect artifacts and events, and the CLI prints them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.errors import DomainError
from domain.reconciliation.classes import CLASSES, REPAIRABLE, DiscrepancyClass
from models import Discrepancy

TABLE_ROWS = 500  # the table artifact shows at most this many (most severe first)


def one_line(mode: str, counts: Mapping[str, Any]) -> str:
    """e.g. 'report: 12 discrepancies (4 repairable) over 1,204 reservations in 3.2 s'."""
    text = (
        f"{mode}: {counts.get('discrepancies', 0):,} discrepanc"
        f"{'y' if counts.get('discrepancies') == 1 else 'ies'} "
        f"({counts.get('repairable', 0):,} repairable) over "
        f"{counts.get('erp_reservations', 0):,} ERP reservations and "
        f"{counts.get('ozmap_ports', 0):,} OZmap ports in {counts.get('seconds', 0):.1f} s"
    )
    repairs = counts.get("repairs")
    if repairs:
        text += (
            f"; repairs enqueued: {repairs.get('enqueued', 0):,} "
            f"({repairs.get('outbox_rows', 0):,} outbox rows)"
        )
    return text


@dataclass(frozen=True)
class RunReport:
    """A finished run as people and alerts see it (plain data: id, mode, scope, counts)."""

    run_id: int
    mode: str
    scope: Mapping[str, Any]
    counts: Mapping[str, Any]

    def one_line(self) -> str:
        return one_line(self.mode, self.counts)

    def summary(self, shown: int) -> str:
        """Markdown: counts per class, what was repaired, what was read; ``shown`` table rows."""
        return _summary(self.run_id, self.mode, self.scope, self.counts, shown)

    def table_note(self, shown: int) -> str:
        """What the discrepancy table holds, against all the run found."""
        total = int(self.counts.get("discrepancies", 0))
        if total > shown:
            return (
                f"{shown:,} most severe of {total:,} discrepancies (all stored in the database, "
                f"run {self.run_id})"
            )
        return f"all {total:,} discrepancies of run {self.run_id}"

    def event_payload(self) -> dict[str, Any]:
        """The completed event's payload: totals, one key per class, repairs enqueued."""
        keys = ("discrepancies", "repairable", "erp_reservations", "ozmap_clients", "ozmap_ports")
        payload: dict[str, Any] = {k: self.counts.get(k) for k in keys}
        payload.update(self.counts.get("by_class") or {})
        repairs = self.counts.get("repairs")
        payload["repairs_enqueued"] = repairs.get("enqueued", 0) if repairs else 0
        return payload

    def scope_label(self) -> str:
        """'all', or the units (else projects) compared, comma-separated."""
        if self.scope.get("full"):
            return "all"
        return ",".join(self.scope.get("units") or self.scope.get("projects") or [])


NO_DISCREPANCY_ROW = {"class": "-", "message": "no discrepancy: the ERP and OZmap agree"}


def failure_text(exc: BaseException) -> str:
    """What a failed run stores and shows (domain errors already say what to do)."""
    if isinstance(exc, DomainError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def failure_markdown(run_id: int, mode: str, error: str) -> str:
    """The summary of a run that failed after it started."""
    return (
        f"## ERP ↔ OZmap reconciliation #{run_id} ({mode}) failed\n\n"
        f"{error[:800]}\n\nNothing is half-applied: every repair is one transaction of "
        "outbox rows with deterministic keys, and the next run completes the work."
    )


def not_started_markdown(error: str) -> str:
    """The summary of a run refused before it started (bad parameters, another run)."""
    return f"## ERP ↔ OZmap reconciliation not started\n\n{error[:800]}\n"


def _summary(
    run_id: int, mode: str, scope: Mapping[str, Any], counts: Mapping[str, Any], shown: int
) -> str:
    by_class: Mapping[str, int] = counts.get("by_class") or {}
    if scope.get("full"):
        where = "all units"
    else:
        parts = []
        if scope.get("units"):
            parts.append("units " + ", ".join(scope["units"]))
        parts.append(f"{len(scope.get('projects') or [])} OZmap project(s)")
        where = "; ".join(parts)
    lines = [
        f"## ERP ↔ OZmap reconciliation #{run_id} ({mode})",
        "",
        f"Scope: {where}. {one_line(mode, counts)}.",
        "",
        "| class | severity | repairable | count | meaning |",
        "|---|---|---|---:|---|",
    ]
    for klass in DiscrepancyClass:
        info = CLASSES[klass]
        lines.append(
            f"| `{klass.value}` | {info.severity.value} | {'yes' if info.repairable else 'no'} "
            f"| {by_class.get(klass.value, 0):,} | {info.title} |"
        )
    lines += [
        "",
        f"Compared: {counts.get('erp_reservations', 0):,} ERP reservations, "
        f"{counts.get('ozmap_clients', 0):,} OZmap clients "
        f"({counts.get('matched', 0):,} matched by client code), "
        f"{counts.get('ozmap_ports', 0):,} customer ports on "
        f"{counts.get('ozmap_splitters', 0):,} splitters. "
        f"{counts.get('foreign_clients', 0):,} OZmap clients outside the ERP's code prefix "
        "were not compared.",
        "",
    ]
    repairs = counts.get("repairs")
    if mode == "repair" and repairs is not None:
        done = repairs.get("by_class") or {}
        lines += [
            "### Repairs (through the outbox; the sync engine delivers them)",
            "",
            f"- enqueued: {repairs.get('enqueued', 0):,} discrepancies, "
            f"{repairs.get('outbox_rows', 0):,} outbox rows "
            + (
                "(" + ", ".join(f"{k}: {v:,}" for k, v in sorted(done.items())) + ")"
                if done
                else ""
            ),
            f"- skipped, changed since compared: {repairs.get('skipped_changed', 0):,}",
            f"- not repairable after all: {repairs.get('not_repairable', 0):,}",
            "",
        ]
    elif mode == "report":
        n = sum(by_class.get(k.value, 0) for k in REPAIRABLE)
        lines += [f"Report only: nothing was changed. {n:,} would be repaired in repair mode.", ""]
    total = int(counts.get("discrepancies", 0))
    if total > shown:
        lines.append(
            f"The table artifact shows the {shown:,} most severe of {total:,} discrepancies; "
            f"all are stored (table `discrepancy`, run_id = {run_id}; "
            f"`erp-ozmap reconcile --show {run_id} --json`)."
        )
    return "\n".join(lines) + "\n"


def _port(side: Mapping[str, Any] | None) -> str:
    if not side:
        return ""
    if "properties" in side:
        return "; ".join(_port(p) for p in side["properties"])
    if side.get("box_id") is None and "port" in side and isinstance(side["port"], dict):
        return ""
    return f"{side.get('box_id')}/{side.get('splitter_id')}/{side.get('port')}"


def table_rows(rows: Iterable[Discrepancy]) -> list[dict[str, Any]]:
    """Rows of the discrepancy table artifact (and of the CLI's table)."""
    out = []
    for d in rows:
        erp = d.erp or {}
        oz = d.ozmap or {}
        holder = oz.get("port") if isinstance(oz.get("port"), dict) else None
        out.append(
            {
                "class": d.klass,
                "severity": d.severity,
                "client code": d.client_code or "",
                "ERP": f"{erp.get('status', '')} {_port(erp)}".strip(),
                "OZmap": (
                    f"{'implanted' if oz.get('implanted') else 'reserved'} {_port(oz)}"
                    if "property_id" in oz
                    else _port(oz)
                    or (
                        f"port {holder['state']} {holder.get('holder_code') or ''}"
                        if holder
                        else ""
                    )
                ).strip(),
                "repair": d.repair_status or "",
                "message": d.message,
            }
        )
    return out


def as_json(run: Mapping[str, Any], rows: Sequence[Discrepancy]) -> dict[str, Any]:
    """A run and its discrepancies as JSON-ready data (CLI ``--json``)."""
    return {
        **run,
        "discrepancies": [
            {
                "class": d.klass,
                "severity": d.severity,
                "repairable": d.repairable,
                "client_code": d.client_code,
                "reservation_id": d.reservation_id,
                "erp": d.erp,
                "ozmap": d.ozmap,
                "message": d.message,
                "repair_status": d.repair_status,
            }
            for d in rows
        ],
    }
