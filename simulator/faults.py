"""Deterministic fault injection for the simulator (switchable at run time).

Every request that the config applies to (``methods``/``paths``) draws its fate, in arrival
order, first from ``script`` (one entry per request) and then from a ``random.Random(seed)``:
so a sequential test sees the same faults on every run.

Fault kinds: ``error`` (a 5xx from ``error_statuses``, or an explicit ``"502"``-style status in
the script), ``429`` (with ``Retry-After``), ``timeout`` (the server holds the request for
``timeout_s`` — longer than a client's read timeout — then answers 504), ``drop`` (socket
closed without any response), ``lost`` (a mutating request is APPLIED, then answered 5xx:
the lost-response case of idempotency tests) and ``lost-drop`` (applied, then dropped).
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any

FAULT_KINDS = ("ok", "error", "429", "timeout", "drop", "lost", "lost-drop")
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class FaultConfig:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (502, 503, 504)
    rate_429: float = 0.0
    retry_after: float = 1.0
    timeout_rate: float = 0.0
    timeout_s: float = 30.0
    drop_rate: float = 0.0
    lost_response_rate: float = 0.0
    lost_response_mode: str = "error"  # "error" (5xx after applying) or "drop"
    methods: tuple[str, ...] | None = None  # only these HTTP methods (None = all)
    paths: tuple[str, ...] | None = None  # only paths under /api/v2 starting with these
    script: list[str] = field(default_factory=list)
    seed: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown fault setting(s): {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        for name in ("error_rate", "rate_429", "timeout_rate", "drop_rate", "lost_response_rate"):
            v = float(getattr(self, name))
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {v}")
            setattr(self, name, v)
        total = (
            self.error_rate
            + self.rate_429
            + self.timeout_rate
            + self.drop_rate
            + self.lost_response_rate
        )
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total:.3f} > 1")
        if self.latency_ms < 0 or self.timeout_s < 0 or self.retry_after < 0:
            raise ValueError("latency_ms, timeout_s and retry_after must be >= 0")
        self.error_statuses = tuple(int(s) for s in self.error_statuses) or (503,)
        if any(not 500 <= s <= 599 for s in self.error_statuses):
            raise ValueError("error_statuses must be 5xx codes")
        if self.lost_response_mode not in ("error", "drop"):
            raise ValueError("lost_response_mode must be 'error' or 'drop'")
        if self.methods is not None:
            self.methods = tuple(m.upper() for m in self.methods)
        if self.paths is not None:
            self.paths = tuple(self.paths)
        self.script = [str(s) for s in self.script]
        for s in self.script:
            if s not in FAULT_KINDS and not (s.isdigit() and 500 <= int(s) <= 599):
                raise ValueError(f"script entry {s!r}: use one of {FAULT_KINDS} or a 5xx code")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["error_statuses"] = list(self.error_statuses)
        return d


@dataclass
class Decision:
    kind: str  # one of FAULT_KINDS
    status: int = 0
    latency_s: float = 0.0


class FaultInjector:
    """Thread-safe holder of the current config, its RNG, script and counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.config = FaultConfig()
        self._rng = random.Random(0)
        self._script: list[str] = []
        self.counters: dict[str, int] = {}
        self.clear()

    def set(self, **settings: Any) -> FaultConfig:
        cfg = FaultConfig.from_dict(settings)
        with self._lock:
            self.config = cfg
            self._rng = random.Random(cfg.seed)
            self._script = list(cfg.script)
            self.counters = dict.fromkeys(("requests", *FAULT_KINDS), 0)
        return cfg

    def clear(self) -> None:
        self.set()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "config": self.config.to_dict(),
                "script_left": list(self._script),
                "counters": dict(self.counters),
            }

    def decide(self, method: str, path: str) -> Decision:
        """The fate of one request (path relative to /api/v2, e.g. '/properties')."""
        with self._lock:
            cfg = self.config
            self.counters["requests"] += 1
            applies = (cfg.methods is None or method in cfg.methods) and (
                cfg.paths is None or any(path.startswith(p) for p in cfg.paths)
            )
            latency = cfg.latency_ms / 1000.0
            if not applies:
                return Decision("ok", latency_s=latency)
            mutating = method in MUTATING
            if self._script:
                entry = self._script.pop(0)
                if entry.isdigit() and entry not in FAULT_KINDS:  # "429" is a kind, not a 5xx
                    d = Decision("error", int(entry), latency)
                elif entry == "error":
                    d = Decision("error", self._rng.choice(cfg.error_statuses), latency)
                elif entry in ("lost", "lost-drop") and not mutating:
                    d = Decision("error" if entry == "lost" else "drop", 503, latency)
                else:
                    d = Decision(entry, 503 if entry == "lost" else 0, latency)
            else:
                u = self._rng.random()
                d = Decision("ok", latency_s=latency)
                edge = 0.0
                for kind, rate in (
                    ("drop", cfg.drop_rate),
                    ("timeout", cfg.timeout_rate),
                    ("429", cfg.rate_429),
                    ("error", cfg.error_rate),
                    ("lost", cfg.lost_response_rate if mutating else 0.0),
                ):
                    edge += rate
                    if u < edge:
                        d = Decision(kind, latency_s=latency)
                        break
                if d.kind == "error" or d.kind == "lost":
                    d.status = self._rng.choice(cfg.error_statuses)
                if d.kind == "lost" and cfg.lost_response_mode == "drop":
                    d.kind = "lost-drop"
            if d.kind == "429":
                d.status = 429
            self.counters[d.kind] = self.counters.get(d.kind, 0) + 1
            return d
