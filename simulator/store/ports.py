"""Ports: a splitter output port's state, finding a free one, blocking one, OZmap feasibility.

A port is free (nothing connected), blocked (flag in ``ports``), or held by a fiber; the
holder's state is read along fiber → drop cable → property → FTTH client: reserved (client not
implanted), active (implanted) or occupied (no client).
"""

from __future__ import annotations

import copy
from typing import Any

from simulator.filters import Cond
from simulator.store.collection import Collections, Doc
from simulator.store.journal import Clock
from simulator.store.queries import Queries


def why_not_free(splitter: Doc, port: int) -> str | None:
    """None if the 1-based port of splitter is usable, else why not."""
    out = splitter["connectables"]["output"]
    if not 1 <= port <= len(out):
        return f"port {port} does not exist (splitter has {len(out)} ports)"
    ports = splitter.get("ports") or []
    if port - 1 < len(ports) and ports[port - 1].get("blocked"):
        return "blocked"
    if out[port - 1] is not None:
        return "occupied"
    return None


class Ports:
    """Port states and the reads and writes built on them; callers hold the store's lock."""

    def __init__(self, collections: Collections, queries: Queries, clock: Clock) -> None:
        self.collections = collections
        self.queries = queries
        self.clock = clock

    def box_splitters(self, box_id: str) -> list[Doc]:
        return self.queries.where("splitters", [Cond("parent", "=", box_id)])

    def customer_ports(self, box_id: str) -> list[tuple[Doc, int]]:
        """(splitter, port) of every output port of the box's customer (drop) splitters."""
        return [
            (spl, p)
            for spl in self.box_splitters(box_id)
            if spl.get("isDrop")
            for p in range(1, len(spl["connectables"]["output"]) + 1)
        ]

    def first_free(self, box_id: str) -> tuple[Doc, int] | None:
        """The first free customer port of the box (splitter order, then port order)."""
        return next(
            ((s, p) for s, p in self.customer_ports(box_id) if why_not_free(s, p) is None), None
        )

    def states(self, splitter_id: str) -> list[str]:
        """free / blocked / reserved / active / occupied per port (1-based order)."""
        spl = self.collections.ref("splitters", splitter_id, "splitter", 404)
        out = []
        for i, fid in enumerate(spl["connectables"]["output"]):
            ports = spl.get("ports") or []
            if fid is None:
                out.append("blocked" if i < len(ports) and ports[i]["blocked"] else "free")
                continue
            out.append(self._holder_state(fid))
        return out

    def _holder_state(self, fiber_id: str) -> str:
        get = self.collections.get
        fiber = get("fibers", fiber_id)
        cable = get("cables", fiber.get("parent")) if fiber else None
        prop = get("properties", cable.get("boxB")) if cable else None
        client = get("ftth-clients", prop.get("client")) if prop else None
        if client is None:
            return "occupied"
        return "active" if client.get("implanted") else "reserved"

    def set_blocked(self, splitter_id: str, port: int, blocked: bool) -> None:
        spl = copy.deepcopy(self.collections.ref("splitters", splitter_id, "splitter", 404))
        spl["ports"][port - 1]["blocked"] = blocked
        spl["updatedAt"] = self.clock.now()
        self.collections.put("splitters", spl)

    def viability(self, lat: float, lng: float, radius: float) -> dict[str, Any]:
        """OZmap's own radius feasibility: boxes within radius with free customer ports."""
        ns = self.queries.query("boxes", [Cond("coords", "near", None, geo=(lat, lng, radius))])
        boxes = self.collections.materialize("boxes", ns)
        dists = self.queries.distances("boxes", ns, lat, lng)
        out = []
        for box, d in zip(boxes, dists, strict=True):
            if box.get("draft"):
                continue
            ports = self.customer_ports(box["id"])
            free = sum(why_not_free(spl, p) is None for spl, p in ports)
            out.append(
                {
                    "id": box["id"],
                    "name": box.get("name"),
                    "coords": box["coords"],
                    "lat": box["lat"],
                    "lng": box["lng"],
                    "distance": round(float(d), 3),
                    "implanted": box.get("implanted"),
                    "availablePorts": free,
                    "totalPorts": len(ports),
                    "viable": free > 0,
                }
            )
        return {"viable": any(b["viable"] for b in out), "boxes": out}
