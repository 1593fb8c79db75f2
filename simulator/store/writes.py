"""Writes: create, patch, batch-update and delete, with OZmap's checks and defaults.

Each model that needs more than its body gets a maker (``_create_<model>``, listed in
:attr:`Writes.makers`); properties, which also lay a drop and take a port, are
:mod:`~simulator.store.properties`. Nothing is written until every check passed, and every
write goes through :class:`~simulator.store.collection.Collections` (indexes + journal).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from simulator.filters import Cond, Filter
from simulator.store.collection import READONLY_FIELDS, Collections, Doc
from simulator.store.documents import Documents
from simulator.store.errors import SimError
from simulator.store.journal import Clock
from simulator.store.ports import Ports
from simulator.store.properties import PropertyWrites
from simulator.store.queries import Queries


class Writes:
    """Every write of the API; callers hold the store's lock and one journal transaction."""

    def __init__(
        self,
        collections: Collections,
        queries: Queries,
        ports: Ports,
        docs: Documents,
        clock: Clock,
    ) -> None:
        self.collections = collections
        self.queries = queries
        self.docs = docs
        self.clock = clock
        self.properties = PropertyWrites(self, ports)
        self.makers: dict[str, Callable[[Doc], Doc]] = {
            "boxes": self._create_boxes,
            "splitters": self._create_splitters,
            "ftth-clients": self.create_ftth_client,
            "cable-types": self._create_cable_types,
            "projects": self._create_projects,
            "cables": self._create_cables,
        }

    # ------------------------------------------------------------------ shared checks

    def check_external_id(self, model: str, body: Doc, own_id: str | None) -> None:
        """409 if another object of model already holds body's external_id."""
        ext = body.get("external_id")
        if ext is None or ext == "":
            return
        holder = self.collections.ext_holder(model, str(ext))
        if holder is not None and holder != own_id:
            raise SimError(409, f"external_id {ext!r} is already used by {model} {holder}")

    @staticmethod
    def require(model: str, body: Doc, *fields: str) -> None:
        missing = [f for f in fields if body.get(f) in (None, "")]
        if missing:
            raise SimError(400, f"{model}: missing required field(s): {', '.join(missing)}")

    def base(self, model: str, body: Doc) -> Doc:
        """A new document of model: body's writable fields, a new id, both timestamps."""
        ts = self.clock.now()
        doc = {k: v for k, v in body.items() if k not in READONLY_FIELDS}
        doc["id"] = self.collections.new_id(model)
        doc["createdAt"] = ts
        doc["updatedAt"] = ts
        return doc

    @staticmethod
    def with_coords(doc: Doc, model: str) -> None:
        """Normalise doc's position to coords [lng, lat] + lat + lng (400 if invalid)."""
        coords = doc.get("coords")
        if coords is None and "lat" in doc and "lng" in doc:
            coords = [doc["lng"], doc["lat"]]
        if coords is None:
            raise SimError(400, f"{model}: missing required field(s): coords")
        try:
            lng, lat = float(coords[0]), float(coords[1])
        except (TypeError, ValueError, IndexError, KeyError):
            raise SimError(400, f"{model}: coords must be [lng, lat]") from None
        if not (-90 <= lat <= 90 and -180 <= lng <= 180):
            raise SimError(
                400, f"{model}: coords out of range: [{lng}, {lat}] (order is [lng, lat])"
            )
        doc["coords"] = [lng, lat]
        doc["lat"] = lat
        doc["lng"] = lng

    # ------------------------------------------------------------------ create

    def create(self, model: str, body: Any) -> Doc:
        """POST /<model>: the created object (shared: the facade copies it)."""
        if not isinstance(body, dict):
            raise SimError(400, "request body must be a JSON object")
        self.collections.col(model)
        self.check_external_id(model, body, None)
        if model == "properties":
            return self.properties.create(body)
        maker = self.makers.get(model)
        doc = maker(body) if maker else self.base(model, body)
        self.collections.put(model, doc)
        return doc

    def _create_boxes(self, body: Doc) -> Doc:
        self.require("boxes", body, "project")
        self.collections.ref("projects", body["project"], "project")
        doc = self.base("boxes", body)
        self.with_coords(doc, "boxes")
        btype = doc.get("boxType") or self.docs.boxtype_ids[0]
        self.collections.ref("box-types", btype, "boxType")
        doc["boxType"] = btype
        if doc.get("pole") is None:
            doc.pop("pole", None)  # OZmap leaves the key out rather than sending null
        else:
            self.collections.ref("poles", doc["pole"], "pole")
        doc["kind"] = "Box"
        doc.setdefault("name", f"CTO-NEW-{doc['id'][-6:]}")
        for k, v in (
            ("hierarchyLevel", 3),
            ("implanted", False),
            ("draft", False),
            ("certified", False),
            ("shared", False),
            ("underground", False),
            ("default_reserve", 0),
            ("tags", []),
            ("cables", []),
            ("observation", ""),
        ):
            doc.setdefault(k, v)
        return doc

    def _create_splitters(self, body: Doc) -> Doc:
        self.require("splitters", body, "parent")
        box = self.collections.ref("boxes", body["parent"], "parent box")
        doc = self.base("splitters", body)
        stype = None
        if doc.get("splitterType"):
            stype = self.collections.ref("splitter-types", doc["splitterType"], "splitterType")
        ratio = doc.get("ratio") or (stype["ratio"] if stype else {"input": 1, "output": 8})
        try:
            out = int(ratio["output"])
        except (TypeError, ValueError, KeyError):
            raise SimError(400, "splitters: ratio.output must be a number") from None
        doc["kind"] = "Splitter"
        doc["ratio"] = {"input": int(ratio.get("input", 1)), "output": out}
        doc.setdefault("isDrop", bool(stype["isDrop"]) if stype else False)
        doc.setdefault("project", box["project"])
        doc.setdefault("name", "Splitter")
        doc.setdefault("implanted", box.get("implanted", True))
        doc.setdefault("attenuation", [10.5] * out)
        doc["connectables"] = {"input": [None], "output": [None] * out}
        doc.setdefault(
            "ports",
            [{"index": p + 1, "blocked": False, "tags": [], "observation": ""} for p in range(out)],
        )
        return doc

    def create_ftth_client(self, body: Doc) -> Doc:
        """A new FTTH client document (not yet written; a property may write it with itself)."""
        doc = self.base("ftth-clients", body)
        doc["kind"] = "FTTHClient"
        if not isinstance(doc.get("code"), str) or not doc["code"].strip():
            doc["code"] = doc["id"]
        for k, v in (
            ("name", ""),
            ("implanted", False),
            ("certified", False),
            ("status", 0),
            ("observation", ""),
            ("tags", []),
            ("onu", {"user_PPPoE": "", "serial_number": "", "mac_address": ""}),
        ):
            doc.setdefault(k, v)
        if not isinstance(doc["implanted"], bool):
            raise SimError(400, "ftth-clients: implanted must be true or false")
        return doc

    def _create_cable_types(self, body: Doc) -> Doc:
        self.require("cable-types", body, "code", "fiberNumber")
        doc = self.base("cable-types", body)
        is_drop = bool(doc.get("isDrop")) or str(doc.get("kind", "")).lower() == "drop"
        doc.setdefault("kind", "Drop" if is_drop else "Cable")
        doc.setdefault("category", "drop" if is_drop else "cable")
        doc.setdefault("isDrop", is_drop)
        doc.setdefault("looseNumber", 1)
        doc.setdefault("default_level", 4 if is_drop else 2)
        doc.setdefault("base_loss", 0.4)
        return doc

    def _create_projects(self, body: Doc) -> Doc:
        self.require("projects", body, "name")
        doc = self.base("projects", body)
        doc.setdefault("parents", [])
        doc.setdefault("lat", 0)
        doc.setdefault("lng", 0)
        drop = doc.get("drop") or {}
        dtype = (drop.get("type") or {}).get("cableType") or drop.get("cableType")
        dtype = dtype or (doc.get("defaults") or {}).get("cableType") or self.docs.proj_drop_type[0]
        doc["drop"] = {
            "type": {"cableType": dtype},
            "cableType": dtype,
            "maxSize": drop.get("maxSize", 250),
        }
        return doc

    def _create_cables(self, body: Doc) -> Doc:
        self.require("cables", body, "project", "cableType")
        self.collections.ref("projects", body["project"], "project")
        ctype = self.collections.ref("cable-types", body["cableType"], "cableType")
        doc = self.base("cables", body)
        doc.setdefault("kind", "Cable")
        doc.setdefault("fiberNumber", ctype.get("fiberNumber", 1))
        doc.setdefault("looseNumber", ctype.get("looseNumber", 1))
        for k, v in (("poles", []), ("tags", []), ("ducts", []), ("implanted", False)):
            doc.setdefault(k, v)
        return doc

    # ------------------------------------------------------------------ delete

    def delete(self, model: str, oid: str) -> None:
        """DELETE /<model>/<id> (properties cascade to client, drop, fiber and port)."""
        if model == "properties":
            self.properties.delete(oid)
            return
        obj = self.collections.ref(model, oid, model.rstrip("s"), 404)
        if model == "ftth-clients":
            ts = self.clock.now()
            for prop in self.queries.where("properties", [Cond("client", "=", oid)]):
                p2 = copy.deepcopy(prop)
                p2["client"] = None
                p2["updatedAt"] = ts
                self.collections.put("properties", p2)
        self.collections.remove(model, obj["id"])

    # ------------------------------------------------------------------ patch

    def patch(self, model: str, oid: str, body: Any) -> None:
        """PATCH /<model>/<id>: shallow merge of the given fields."""
        if not isinstance(body, dict):
            raise SimError(400, "request body must be a JSON object")
        if model == "properties":
            moving = sorted({"connector", "port", "auto_connect", "client", "box"} & set(body))
            if moving:
                raise SimError(
                    400,
                    f"PATCH /properties: changing {', '.join(moving)} is not simulated; delete the "
                    "property and create it again",
                )
        obj = self.collections.ref(model, oid, model.rstrip("s"), 404)
        self.check_external_id(model, body, obj["id"])
        doc = self._apply_patch(model, obj, body, self.clock.now())
        self.collections.put(model, doc)
        self._after_patch(model, doc, obj)

    def batch_update(self, model: str, flt: Filter, update: Any) -> int:
        """POST /<model>/batch-update {filter, update}: patch every match; returns the count."""
        if not isinstance(update, dict) or not update:
            raise SimError(400, "batch-update: 'update' must be a non-empty object")
        if not flt:
            raise SimError(400, "batch-update: 'filter' must select something (empty filter)")
        ns = self.queries.query(model, flt)
        ts = self.clock.now()
        for obj in self.collections.materialize(model, ns):
            doc = self._apply_patch(model, obj, update, ts)
            self.collections.put(model, doc)
            self._after_patch(model, doc, obj)
        return int(ns.size)

    def _apply_patch(self, model: str, obj: Doc, body: Doc, ts: str) -> Doc:
        doc = copy.deepcopy(obj)
        for k, v in body.items():
            if k in READONLY_FIELDS or (v is None and k == "external_id"):
                continue
            doc[k] = v
        if model == "ftth-clients":
            if "implanted" in body and not isinstance(body["implanted"], bool):
                raise SimError(400, "ftth-clients: implanted must be true or false")
            if "code" in body and (not isinstance(body["code"], str) or not body["code"]):
                raise SimError(400, "ftth-clients: code must be a non-empty string")
        if model == "cables" and "cableType" in body:
            self.collections.ref("cable-types", body["cableType"], "cableType")
        if model in ("boxes", "properties") and ("coords" in body or "lat" in body):
            if "coords" not in body:
                doc["coords"] = [doc.get("lng"), doc.get("lat")]
            self.with_coords(doc, model)
        doc["updatedAt"] = ts
        return doc

    def _after_patch(self, model: str, doc: Doc, old: Doc) -> None:
        """Keep the denormalised `implanted` flags of property connections and drop in step."""
        if model != "ftth-clients" or doc.get("implanted") == old.get("implanted"):
            return
        for prop in self.queries.where("properties", [Cond("client", "=", doc["id"])]):
            p2 = copy.deepcopy(prop)
            for c in p2.get("connections") or []:
                c["implanted"] = doc["implanted"]
            p2["updatedAt"] = doc["updatedAt"]
            self.collections.put("properties", p2)
            drop = self.collections.get("cables", prop.get("drop"))
            if drop is not None:
                d2 = copy.deepcopy(drop)
                d2["implanted"] = doc["implanted"]
                d2["updatedAt"] = doc["updatedAt"]
                self.collections.put("cables", d2)
