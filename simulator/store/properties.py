"""Property writes: a property (reservation / customer) with its client, drop and port.

Creating a property in a box lays a drop cable from the box to it, with one fiber, and
connects that fiber to a splitter output port (the one asked for, or the first free one with
``auto_connect``); the FTTH client is an existing one or created inline. Deleting it undoes
all of that. Every check runs before the first write.
"""

from __future__ import annotations

import copy
import itertools
from typing import TYPE_CHECKING, Any

from pyproj import Geod

from simulator.filters import Cond
from simulator.store.collection import Doc
from simulator.store.errors import SimError
from simulator.store.ports import Ports, why_not_free

if TYPE_CHECKING:
    from simulator.store.writes import Writes

_GEOD = Geod(ellps="WGS84")
# Request fields that steer the creation and are not part of the property document.
_REQUEST_ONLY = ("auto_connect", "connector", "port", "force", "drop_poles", "client")


class PropertyWrites:
    """POST and DELETE of properties; part of :class:`~simulator.store.writes.Writes`."""

    def __init__(self, writes: Writes, ports: Ports) -> None:
        self.writes = writes
        self.collections = writes.collections
        self.queries = writes.queries
        self.ports = ports

    # ------------------------------------------------------------------ create

    def create(self, body: Doc) -> Doc:
        """POST /properties: checks, then client, drop cable, fiber, port and property."""
        project, box = self._project_and_box(body)
        poles = self._drop_poles(body, box)
        splitter, port = self._choose_port(body, box)
        client, new_client = self._client(body)
        doc = self._property_doc(body, box, client)
        if box is not None:
            fiber = self._lay_drop(doc, project, box, client, splitter, poles)
            if splitter is not None:
                assert port is not None
                self._connect(doc, splitter, port, fiber["id"], implanted=_implanted(client))
        if client is not None:
            client["updatedAt"] = doc["updatedAt"] if not new_client else client["updatedAt"]
            self.collections.put("ftth-clients", client)
        self.collections.put("properties", doc)
        return doc

    def _project_and_box(self, body: Doc) -> tuple[Doc, Doc | None]:
        self.writes.require("properties", body, "project")
        project = self.collections.ref("projects", body["project"], "project", 404)
        box = None
        if body.get("box") not in (None, ""):
            box = self.collections.ref("boxes", body["box"], "box", 404)
        return project, box

    def _drop_poles(self, body: Doc, box: Doc | None) -> list[Doc]:
        """The poles of `drop_poles`: a chain of adjacent poles starting at the box's pole."""
        ids = body.get("drop_poles")
        if ids in (None, []):
            return []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise SimError(400, "properties: 'drop_poles' must be a list of pole ids")
        if box is None:
            raise SimError(400, "properties: 'box' is required with 'drop_poles'")
        poles = []
        for pid in ids:
            pole = self.collections.get("poles", pid)
            if pole is None:
                raise SimError(400, f"properties: drop_poles: pole {pid!r} not found")
            poles.append(pole)
        if ids[0] != box.get("pole"):
            raise SimError(
                400,
                f"properties: drop_poles must start at the pole of box {box['id']} "
                f"({box.get('pole')!r}), not at {ids[0]!r}",
            )
        for a, b in itertools.pairwise(poles):
            if b["id"] not in (a.get("adjacents") or []):
                raise SimError(
                    400,
                    f"properties: drop_poles: pole {b['id']} is not adjacent to pole {a['id']} "
                    "(the list must be a chain of adjacent poles from the box to the customer)",
                )
        return poles

    def _choose_port(self, body: Doc, box: Doc | None) -> tuple[Doc | None, int | None]:
        """The (splitter, port) to connect: asked for with `connector`, or `auto_connect`."""
        auto = bool(body.get("auto_connect"))
        connector = body.get("connector")
        if (auto or connector) and box is None:
            raise SimError(400, "properties: 'box' is required to connect a port")
        if connector:
            assert box is not None
            return self._requested_port(box, connector, body.get("port"))
        if auto:
            assert box is not None
            found = self.ports.first_free(box["id"])
            if found is None:
                raise SimError(
                    409, f"box {box.get('name')} ({box['id']}) has no free customer port"
                )
            return found
        return None, None

    def _requested_port(self, box: Doc, connector: Any, port: Any) -> tuple[Doc, int]:
        if port is None or isinstance(port, bool) or not isinstance(port, int | float):
            raise SimError(400, "properties: 'port' (1-based number) is required with 'connector'")
        port = int(port)
        splitter = self.collections.ref("splitters", connector, "connector (splitter)", 404)
        if splitter.get("parent") != box["id"]:
            raise SimError(
                400, f"splitter {splitter['id']} is not in box {box['id']} ({box.get('name')})"
            )
        why = why_not_free(splitter, port)
        if why in ("occupied", "blocked"):
            raise SimError(
                409,
                f"port {port} of splitter {splitter.get('name')} ({splitter['id']}) in box "
                f"{box.get('name')} ({box['id']}) is "
                + ("already occupied" if why == "occupied" else "blocked"),
            )
        if why:
            raise SimError(400, why)
        return splitter, port

    def _client(self, body: Doc) -> tuple[Doc | None, bool]:
        """(the property's FTTH client or None, whether it is new) from an id or an object."""
        client_in = body.get("client")
        if isinstance(client_in, str):
            client = copy.deepcopy(self.collections.ref("ftth-clients", client_in, "client", 404))
            holders = self.queries.select(
                self.collections.cols["properties"], [Cond("client", "=", client["id"])]
            )
            if holders.size:
                raise SimError(409, f"client {client['id']} already belongs to a property")
            return client, False
        if isinstance(client_in, dict):
            self.writes.check_external_id("ftth-clients", client_in, None)
            return self.writes.create_ftth_client(client_in), True
        if client_in is None:
            return None, False
        raise SimError(400, "properties: 'client' must be an id or an object")

    def _property_doc(self, body: Doc, box: Doc | None, client: Doc | None) -> Doc:
        doc = self.writes.base("properties", body)
        for k in _REQUEST_ONLY:
            doc.pop(k, None)
        if doc.get("coords") is None and "lat" not in doc and box is not None:
            doc["coords"] = list(box["coords"])
        self.writes.with_coords(doc, "properties")
        doc["kind"] = "Property"
        doc["box"] = box["id"] if box else None
        doc.setdefault("address", "")
        doc.setdefault("tags", [])
        doc.setdefault("observation", "")
        doc["client"] = client["id"] if client else None
        doc["connections"] = []
        doc["drop"] = None
        return doc

    def _lay_drop(
        self,
        doc: Doc,
        project: Doc,
        box: Doc,
        client: Doc | None,
        splitter: Doc | None,
        poles: list[Doc],
    ) -> Doc:
        """A drop cable from box to the property (along poles if given); returns the fiber
        plugged into the port (the first of the cable's fibers)."""
        cable = self._drop_cable(doc, project, box, client, poles)
        self.collections.put("cables", cable)
        # One fiber per fiber of the drop's cable type; the first one goes to the port.
        fibers = []
        for number in range(1, int(cable["fiberNumber"]) + 1):
            fiber = self.writes.base("fibers", {})
            fiber.update(
                kind="Fiber",
                name=str(number),
                parent=cable["id"],
                project=project["id"],
                fiberNumber=number,
                isDrop=True,
                connectors=[splitter["id"]] if splitter and number == 1 else [],
                observation="",
            )
            self.collections.put("fibers", fiber)
            fibers.append(fiber)
        doc["drop"] = cable["id"]
        box2 = copy.deepcopy(box)
        box2.setdefault("cables", []).append(cable["id"])
        box2["updatedAt"] = doc["updatedAt"]
        self.collections.put("boxes", box2)
        return fibers[0]

    def _drop_cable(
        self, doc: Doc, project: Doc, box: Doc, client: Doc | None, poles: list[Doc]
    ) -> Doc:
        cable_type = project["drop"]["type"]["cableType"]
        ctype = self.collections.get("cable-types", cable_type) or {}
        length = round(drop_length_m(box, poles, doc), 2)
        cable = self.writes.base("cables", {})
        cable.update(
            kind="Drop",
            name=f"Drop {client['code'] if client else doc['id']}",
            project=project["id"],
            cableType=cable_type,
            boxA=box["id"],
            boxB=doc["id"],
            hierarchyLevel=4,
            fiberNumber=int(ctype.get("fiberNumber") or 1),
            looseNumber=1,
            implanted=_implanted(client),
            length=length,
            ground_length=length,
            altitude_length=0,
            loss=round(length / 1000 * 0.4, 4),
            orientationA="",
            orientationB="",
            poles=[{"id": p["id"], "reserve": 0} for p in poles],
            ducts=[],
            tags=[],
            observation="",
        )
        return cable

    def _connect(
        self, doc: Doc, splitter: Doc, port: int, fiber_id: str, *, implanted: bool
    ) -> None:
        """Plug the drop's fiber into the splitter port and record it on the property."""
        spl2 = copy.deepcopy(splitter)
        spl2["connectables"]["output"][port - 1] = fiber_id
        spl2["updatedAt"] = doc["updatedAt"]
        self.collections.put("splitters", spl2)
        doc["connections"] = [
            {
                "id": splitter["id"],
                "name": splitter.get("name", "Splitter"),
                "kind": "Splitter",
                "port": port,
                "fiber": fiber_id,
                "implanted": implanted,
            }
        ]

    # ------------------------------------------------------------------ delete

    def delete(self, oid: str) -> None:
        """DELETE /properties/<id>: the property, its client, drop, fiber, and frees the port."""
        prop = self.collections.ref("properties", oid, "property", 404)
        ts = self.writes.clock.now()
        drop_id = prop.get("drop")
        fiber_ids = self._fibers_of(prop)
        self._unplug(prop, fiber_ids, ts)
        for fid in fiber_ids:
            self.collections.remove("fibers", fid)
        if drop_id:
            self._remove_drop(prop, drop_id, ts)
        if prop.get("client"):
            self.collections.remove("ftth-clients", prop["client"])
        self.collections.remove("properties", prop["id"])

    def _fibers_of(self, prop: Doc) -> set[str]:
        """Ids of the fibers of the property's connections and of its drop cable."""
        fiber_ids = {c.get("fiber") for c in prop.get("connections") or [] if c.get("fiber")}
        drop_id = prop.get("drop")
        if drop_id:
            fibers = self.queries.where("fibers", [Cond("parent", "=", drop_id)])
            fiber_ids |= {o["id"] for o in fibers}
        return fiber_ids

    def _unplug(self, prop: Doc, fiber_ids: set[str], ts: str) -> None:
        """Free every splitter port of the property's connections that holds one of fiber_ids."""
        for conn in prop.get("connections") or []:
            spl = self.collections.get("splitters", conn.get("id"))
            if spl is None:
                continue
            out = spl["connectables"]["output"]
            if any(f in fiber_ids for f in out):
                spl2 = copy.deepcopy(spl)
                spl2["connectables"]["output"] = [None if f in fiber_ids else f for f in out]
                spl2["updatedAt"] = ts
                self.collections.put("splitters", spl2)

    def _remove_drop(self, prop: Doc, drop_id: str, ts: str) -> None:
        """Remove the drop cable and take it off its box's cable list."""
        self.collections.remove("cables", drop_id)
        box = self.collections.get("boxes", prop.get("box"))
        if box is not None and drop_id in (box.get("cables") or []):
            box2 = copy.deepcopy(box)
            box2["cables"] = [c for c in box2["cables"] if c != drop_id]
            box2["updatedAt"] = ts
            self.collections.put("boxes", box2)


def drop_length_m(box: Doc, poles: list[Doc], prop: Doc) -> float:
    """Geodesic (WGS84) length of box → each pole in order → the property, in metres."""
    pts = [(box["lng"], box["lat"]), *((p["lng"], p["lat"]) for p in poles)]
    pts.append((prop["lng"], prop["lat"]))
    lngs = [float(p[0]) for p in pts]
    lats = [float(p[1]) for p in pts]
    return float(_GEOD.line_length(lngs, lats))


def _implanted(client: Doc | None) -> bool:
    """A property's connection and drop are implanted when its client is."""
    return bool(client.get("implanted")) if client else False
