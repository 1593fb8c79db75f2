"""What a network refresh did, in the words the operator reads, and when it failed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final

from domain.errors import DomainError
from domain.network_cache.plan import ProjectPlan

PORT_COUNTS: Final = ("free", "reserved", "active", "occupied", "blocked")


@dataclass
class ProjectRefresh:
    """What one project's refresh did, in the words the operator reads in the summary."""

    project_id: str
    name: str | None
    units: tuple[str, ...]
    mode: str
    boxes_read: int = 0
    boxes_new: int = 0
    boxes_changed: int = 0
    boxes_unchanged: int = 0
    boxes_removed: int = 0
    drafts: int = 0
    splitters_written: int = 0
    splitters_removed: int = 0
    ports: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PORT_COUNTS, 0))
    boxes_cached: int = 0  # boxes of the project in the cache afterwards
    poles_read: int = 0
    poles_written: int = 0  # new or changed
    poles_removed: int = 0
    poles_cached: int = 0
    drop_max_changed: bool = False
    high_water: datetime | None = None
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(
            self.boxes_new
            + self.boxes_changed
            + self.boxes_removed
            + self.splitters_removed
            + self.poles_written
            + self.poles_removed
            + self.drop_max_changed
        )

    @property
    def label(self) -> str:
        return f"{self.name} ({self.project_id})" if self.name else self.project_id

    def one_line(self) -> str:
        """e.g. 'FTTH SP (6501...) [SPO], full: 412 boxes read: 3 new, 5 changed, ...'."""
        units = f" [{', '.join(self.units)}]" if self.units else ""
        ports = ", ".join(f"{self.ports[k]:,} {k}" for k in PORT_COUNTS)
        return (
            f"{self.label}{units}, {self.mode}: {self.boxes_read:,} boxes read — "
            f"{self.boxes_new:,} new, {self.boxes_changed:,} changed, "
            f"{self.boxes_unchanged:,} unchanged, {self.boxes_removed:,} removed; "
            f"ports read: {ports}; {self.boxes_cached:,} boxes cached, "
            f"{self.poles_cached:,} poles cached ({self.seconds:.1f} s)"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["units"] = list(self.units)
        data["high_water"] = self.high_water.isoformat() if self.high_water else None
        data["changed"] = self.changed
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProjectRefresh:
        """Back from :meth:`to_dict` (a child run's result, aggregated by its parent)."""
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["units"] = tuple(values.get("units") or ())
        mark = values.get("high_water")
        values["high_water"] = datetime.fromisoformat(mark) if mark else None
        return cls(**values)


class NetworkRefreshFailed(RuntimeError):
    """At least one project could not be refreshed; `report` says which and why."""

    def __init__(self, report: RefreshReport) -> None:
        self.report = report
        failed = report.failed
        super().__init__(
            f"{len(failed)} of {report.totals()['projects']} project(s) failed: "
            + "; ".join(f"{pid}: {err}" for pid, err in failed.items())
        )

    def __reduce__(self) -> tuple[type[NetworkRefreshFailed], tuple[RefreshReport]]:
        return (type(self), (self.report,))  # pickles with its report (Prefect keeps states)


@dataclass
class RefreshReport:
    """A whole refresh: per-project results, failures, removals and the new generation."""

    full: bool
    units: tuple[str, ...]
    projects: list[ProjectRefresh] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # project id → error
    removed_unserved: int = 0
    generation: int | None = None  # the new generation when the cache changed
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return self.removed_unserved > 0 or any(p.changed for p in self.projects)

    @property
    def mode(self) -> str:
        return "full" if self.full else "incremental"

    def record_failure(self, project: ProjectPlan, exc: BaseException) -> str:
        """Note a project that failed (the others go on); returns what the summary says."""
        text = error_text(exc)
        self.failed[project.project_id] = text
        return text

    def add_part(self, part: dict[str, Any]) -> None:
        """Fold in a child run's report (:meth:`to_dict`) of some of this refresh's projects."""
        self.projects.extend(ProjectRefresh.from_dict(p) for p in part.get("projects", ()))
        self.failed.update(part.get("failed") or {})

    def record_part_failure(self, project_ids: list[str], run_name: str, error: str) -> None:
        """A child run that failed without a report: each of its projects failed with it."""
        for pid in project_ids:
            self.failed.setdefault(pid, f"child run {run_name} failed: {error}")

    def sort_projects(self) -> None:
        """Operator order, by unit then project (parallel tasks finish in any order)."""
        self.projects.sort(key=lambda r: (r.units, r.project_id))

    def raise_if_failed(self) -> None:
        """The run fails when any project failed (their cached boxes were kept)."""
        if self.failed:
            raise NetworkRefreshFailed(self)

    def totals(self) -> dict[str, int]:
        keys = ("boxes_read", "boxes_new", "boxes_changed", "boxes_unchanged", "boxes_removed")
        out = {k: sum(getattr(p, k) for p in self.projects) for k in keys}
        out["boxes_removed"] += self.removed_unserved
        out["projects"] = len(self.projects) + len(self.failed)
        out["projects_failed"] = len(self.failed)
        return out

    def event_payload(self) -> dict[str, Any]:
        """What the refreshed / refresh-failed event carries."""
        return {**self.totals(), "generation": self.generation, "failed": list(self.failed)}

    def one_line(self) -> str:
        t = self.totals()
        scope = ", ".join(self.units) if self.units else "no unit"
        failed = f"; {t['projects_failed']} FAILED" if self.failed else ""
        reload = (
            f"; feasibility index generation {self.generation}"
            if self.generation is not None
            else "; nothing changed"
        )
        return (
            f"{self.mode} network refresh of {scope}: "
            f"{t['projects']} project(s), {t['boxes_read']:,} boxes read — {t['boxes_new']:,} "
            f"new, {t['boxes_changed']:,} changed, {t['boxes_removed']:,} removed{failed}{reload}"
        )

    def markdown(self) -> str:
        """The run's summary artifact: one line per project in operator words."""
        lines = [
            f"## Network refresh ({self.mode})",
            "",
            self.one_line() + ".",
            "",
            "| unit(s) | OZmap project | mode | boxes read | new | changed | unchanged | removed "
            "| free ports | reserved | active | occupied | blocked | boxes cached |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for p in self.projects:
            lines.append(
                f"| {', '.join(p.units)} | {p.label} | {p.mode} | {p.boxes_read:,} | "
                f"{p.boxes_new:,} | {p.boxes_changed:,} | {p.boxes_unchanged:,} | "
                f"{p.boxes_removed:,} | "
                + " | ".join(f"{p.ports[k]:,}" for k in PORT_COUNTS)
                + f" | {p.boxes_cached:,} |"
            )
        if self.failed:
            lines += ["", "### Failed projects (their cached boxes were kept)", ""]
            lines += [f"- `{pid}`: {error}" for pid, error in self.failed.items()]
        if self.removed_unserved:
            lines += [
                "",
                f"{self.removed_unserved:,} cached box(es) of projects no unit serves any more "
                "were removed.",
            ]
        if self.generation is not None:
            lines += [
                "",
                f"The feasibility index reloads (cache generation {self.generation}); "
                "services pick it up within seconds.",
            ]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "full": self.full,
            "units": list(self.units),
            "totals": self.totals(),
            "projects": [p.to_dict() for p in self.projects],
            "failed": dict(self.failed),
            "removed_unserved": self.removed_unserved,
            "generation": self.generation,
            "changed": self.changed,
            "seconds": round(self.seconds, 3),
        }


def error_text(exc: BaseException) -> str:
    """What the summary says about a failed project (domain errors already say what to do)."""
    if isinstance(exc, DomainError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
