"""Generated documents: the JSON objects of the generated network, built on demand.

Object ``n`` of a generated model is a pure function of the network arrays (and the seed, for
names and addresses), so nothing is stored until it is written. Built objects may share
nested read-only parts (a splitter's ``ports`` list); every write deep-copies first.

A new generated kind (poles, ...) gets its builder here and a line in
:meth:`Documents.collections`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from simulator import filters as F
from simulator.catalogues import BOX_TYPES, CITIES, FIRST_NAMES, LAST_NAMES, POLE_TYPES, STREETS
from simulator.ids import BASE_TIME, make_id
from simulator.network import NetworkState, mix64, mix64_many
from simulator.store.collection import Collection, Doc

CLIENT_CODE_PREFIX = "SIM-"


class Documents:
    """Builders of the generated objects, plus the id lookups they and the queries share."""

    def __init__(self, net: NetworkState) -> None:
        self.net = net
        self.proj_ids = [p["id"] for p in net.projects]
        self.boxtype_ids = [t["id"] for t in net.box_types]
        self.spltype_ids = [t["id"] for t in net.splitter_types]
        self.poletype_ids = [t["id"] for t in net.pole_types]
        self.proj_drop_type = [p["drop"]["type"]["cableType"] for p in net.projects]
        self.spl_out = net.spl_out
        self.spl_isdrop = net.spl_isdrop
        self.spl_slot = (
            np.arange(net.n_splitters, dtype=np.int64) - net.box_spl_start[net.spl_box]
            if net.n_splitters
            else np.zeros(0, dtype=np.int64)
        )
        self._ports_cache: dict[tuple[int, int], list[Doc]] = {}

    def collections(self) -> dict[str, Collection]:
        """One collection per model: the catalogues as they are, the bulk through a builder."""
        net = self.net

        def static(items: list[Doc]) -> Callable[[int], Doc]:
            return lambda i: items[i]

        cols: dict[str, Collection] = {}
        for model, items in (
            ("projects", net.projects),
            ("box-types", net.box_types),
            ("cable-types", net.cable_types),
            ("splitter-types", net.splitter_types),
            ("fiber-profiles", net.fiber_profiles),
            ("users", net.users),
            ("pole-types", net.pole_types),
        ):
            cols[model] = Collection(model, len(items), static(items))
        generated: tuple[tuple[str, int, Callable[[int], Doc]], ...] = (
            ("poles", net.n_poles, self.pole),
            ("boxes", net.n_boxes, self.box),
            ("splitters", net.n_splitters, self.splitter),
            ("properties", net.n_props, self.property),
            ("ftth-clients", net.n_props, self.client),
            ("cables", net.n_props, self.cable),
            ("fibers", net.n_props, self.fiber),
        )
        for model, n, builder in generated:
            cols[model] = Collection(model, n, builder)
        cols["cables"].batch = self.cables
        cols["properties"].batch = self.properties
        cols["ftth-clients"].batch = self.clients
        return cols

    # ------------------------------------------------------------------ poles

    def pole(self, i: int) -> Doc:
        pl = self.net.poles
        city = int(pl.project[i])
        t = int(pl.kind[i])
        lng, lat = float(pl.lng[i]), float(pl.lat[i])
        a0, a1 = int(pl.adj_start[i]), int(pl.adj_start[i + 1])
        usable = bool(pl.usable[i])
        return {
            "id": make_id("poles", i),
            "kind": "Pole",
            "name": f"{POLE_TYPES[t][1]}{CITIES[city].code}-{i - int(pl.city_start[city]) + 1:06d}",
            "coords": [lng, lat],
            "lat": lat,
            "lng": lng,
            "project": self.proj_ids[city],
            "poleType": self.poletype_ids[t],
            "usable": usable,
            "adjacents": [make_id("poles", int(j)) for j in pl.adj[a0:a1]],
            "licensing": {"status": 2 if usable else 1, "protocol": None},
            "observation": "" if usable else "Poste sem espaço para novos cabos",
            "tags": [],
            "createdAt": BASE_TIME,
            "updatedAt": BASE_TIME,
        }

    # ------------------------------------------------------------------ boxes and splitters

    def box(self, b: int) -> Doc:
        net = self.net
        city = int(net.box_project[b])
        t = int(net.box_type[b])
        lng = float(net.box_lng[b])
        lat = float(net.box_lat[b])
        s0, s1 = int(net.box_spl_start[b]), int(net.box_spl_start[b + 1])
        k0, k1 = int(net.spl_prop_start[s0]), int(net.spl_prop_start[s1])
        h = mix64(net.seed, 4, b)
        code, prefix = BOX_TYPES[t][0], BOX_TYPES[t][1]
        return {
            "id": make_id("boxes", b),
            "kind": "Box",
            "name": f"{prefix}{CITIES[city].code}-{int(net.box_seq[b]):05d}",
            "coords": [lng, lat],
            "lat": lat,
            "lng": lng,
            "project": self.proj_ids[city],
            "boxType": self.boxtype_ids[t],
            "hierarchyLevel": BOX_TYPES[t][2],
            "implanted": bool(net.box_implanted[b]),
            "draft": bool(net.box_draft[b]),
            "certified": bool(net.box_certified[b]),
            "shared": False,
            "underground": False,
            "default_reserve": 0,
            "pole": make_id("poles", int(net.box_pole[b])),
            "tags": [],
            "cables": [make_id("cables", k) for k in range(k0, k1)],
            "address": f"{STREETS[h % len(STREETS)]}, {(h >> 8) % 2000 + 1} - "
            f"{CITIES[city].name}/{CITIES[city].uf}",
            "observation": "" if code == "CTO" else "Caixa de emenda",
            "createdAt": BASE_TIME,
            "updatedAt": BASE_TIME,
        }

    def splitter(self, s: int) -> Doc:
        net = self.net
        b = int(net.spl_box[s])
        t = int(net.spl_type[s])
        out = int(self.spl_out[s])
        occ = int(net.spl_occ[s])
        blk = int(net.spl_blocked[s])
        k = int(net.spl_prop_start[s])
        output: list[str | None] = []
        for p in range(out):
            if occ >> p & 1:
                output.append(make_id("fibers", k))
                k += 1
            else:
                output.append(None)
        return {
            "id": make_id("splitters", s),
            "kind": "Splitter",
            "name": f"Splitter {int(self.spl_slot[s]) + 1}",
            "label": "",
            "index": int(self.spl_slot[s]),
            "parent": make_id("boxes", b),
            "project": self.proj_ids[int(net.box_project[b])],
            "isDrop": bool(self.spl_isdrop[s]),
            "implanted": bool(net.box_implanted[b]),
            "splitterType": self.spltype_ids[t],
            "ratio": {"input": 1, "output": out},
            "attenuation": net.splitter_types[t]["attenuation"],
            "connectables": {"input": [None], "output": output},
            "ports": self._ports(out, blk),
            "observation": "",
            "createdAt": BASE_TIME,
            "updatedAt": BASE_TIME,
        }

    def _ports(self, out: int, blocked: int) -> list[Doc]:
        """The ports list for (size, blocked mask), shared between objects: read-only."""
        key = (out, blocked)
        ports = self._ports_cache.get(key)
        if ports is None:
            ports = [
                {"index": p + 1, "blocked": bool(blocked >> p & 1), "tags": [], "observation": ""}
                for p in range(out)
            ]
            self._ports_cache[key] = ports
        return ports

    # ------------------------------------------------------------------ what hangs on a port
    # Generated occupied port k has a property, its FTTH client, a drop cable and its fiber.

    def _prop_place(self, k: int, h: int | None = None) -> tuple[int, int, int, float, float]:
        """(splitter, port, box, lng, lat) of generated property k (h: its place hash)."""
        net = self.net
        s = int(net.prop_spl[k])
        b = int(net.spl_box[s])
        h = mix64(net.seed, 6, k) if h is None else h
        d = 15.0 + (h & 0xFFFF) / 65535.0 * 105.0
        br = ((h >> 16) & 0xFFFF) / 65535.0 * 2 * math.pi
        blat, blng = float(net.box_lat[b]), float(net.box_lng[b])
        lat = round(blat + d * math.cos(br) / 111320.0, 7)
        lng = round(blng + d * math.sin(br) / (111320.0 * math.cos(math.radians(blat))), 7)
        return s, int(net.prop_port[k]), b, lng, lat

    def properties(self, ks: np.ndarray) -> list[Doc]:
        """Properties ks, their hashes computed in one vectorised pass."""
        seed, k_list = self.net.seed, ks.tolist()
        places, names = mix64_many(seed, 6, ks), mix64_many(seed, 7, ks)
        return [self.property(*a) for a in zip(k_list, places, names, strict=True)]

    def property(self, k: int, h_place: int | None = None, h: int | None = None) -> Doc:
        net = self.net
        s, port, b, lng, lat = self._prop_place(k, h_place)
        city = int(net.box_project[b])
        h = mix64(net.seed, 7, k) if h is None else h
        implanted = bool(net.prop_implanted[k])
        return {
            "id": make_id("properties", k),
            "kind": "Property",
            "project": self.proj_ids[city],
            "box": make_id("boxes", b),
            "client": make_id("ftth-clients", k),
            "drop": make_id("cables", k),
            "coords": [lng, lat],
            "lat": lat,
            "lng": lng,
            "address": f"{STREETS[h % len(STREETS)]}, {(h >> 8) % 3000 + 1} - "
            f"{CITIES[city].name}/{CITIES[city].uf}",
            "connections": [
                {
                    "id": make_id("splitters", s),
                    "name": f"Splitter {int(self.spl_slot[s]) + 1}",
                    "kind": "Splitter",
                    "port": port,
                    "fiber": make_id("fibers", k),
                    "implanted": implanted,
                }
            ],
            "tags": [],
            "observation": "",
            "createdAt": BASE_TIME,
            "updatedAt": BASE_TIME,
        }

    def clients(self, ks: np.ndarray) -> list[Doc]:
        """FTTH clients ks, their hashes computed in one vectorised pass."""
        hashes = mix64_many(self.net.seed, 7, ks)
        return [self.client(k, h) for k, h in zip(ks.tolist(), hashes, strict=True)]

    def client(self, k: int, h: int | None = None) -> Doc:
        h = mix64(self.net.seed, 7, k) if h is None else h
        name = (
            f"{FIRST_NAMES[(h >> 20) % 16]} {LAST_NAMES[(h >> 28) % 16]} "
            f"{LAST_NAMES[(h >> 36) % 16]}"
        )
        code = f"{CLIENT_CODE_PREFIX}{k + 1:07d}"
        return {
            "id": make_id("ftth-clients", k),
            "kind": "FTTHClient",
            "code": code,
            "name": name,
            "implanted": bool(self.net.prop_implanted[k]),
            "certified": False,
            "status": 0,
            "observation": "",
            "tags": [],
            "onu": {
                "user_PPPoE": code.lower(),
                "serial_number": f"ZTEG{h & 0xFFFFFFFF:08X}",
                "mac_address": ":".join(f"{(h >> (8 * i)) & 0xFF:02X}" for i in range(6)),
            },
            "createdAt": BASE_TIME,
            "updatedAt": BASE_TIME,
        }

    def client_number(self, code: Any) -> int | None:
        """k of the generated client with this code (the inverse of the code in client(k))."""
        if not isinstance(code, str) or not code.startswith(CLIENT_CODE_PREFIX):
            return None
        digits = code[len(CLIENT_CODE_PREFIX) :]
        if len(digits) != 7 or not digits.isdigit():
            return None
        k = int(digits) - 1
        return k if 0 <= k < self.net.n_props else None

    def cable(self, k: int) -> Doc:
        return self.cables(np.array([k], dtype=np.int64))[0]

    def cables(self, ks: np.ndarray) -> list[Doc]:
        """Drop cables ks: the lengths in one vectorised geodesic (most of a cable's cost)."""
        if not len(ks):
            return []
        net = self.net
        hashes = mix64_many(net.seed, 6, ks)
        places = [self._prop_place(k, h) for k, h in zip(ks.tolist(), hashes, strict=True)]
        boxes = np.array([p[2] for p in places], dtype=np.int64)
        lengths = F.geodesic_m(
            net.box_lat[boxes],
            net.box_lng[boxes],
            np.array([p[4] for p in places]),
            np.array([p[3] for p in places]),
        )
        return [
            self._cable(k, b, round(float(length), 2))
            for k, b, length in zip(ks.tolist(), boxes.tolist(), lengths.tolist(), strict=True)
        ]

    def _cable(self, k: int, b: int, length: float) -> Doc:
        net = self.net
        city = int(net.box_project[b])
        return {
            "id": make_id("cables", k),
            "kind": "Drop",
            "name": f"Drop {CLIENT_CODE_PREFIX}{k + 1:07d}",
            "project": self.proj_ids[city],
            "cableType": self.proj_drop_type[city],
            "boxA": make_id("boxes", b),
            "boxB": make_id("properties", k),
            "hierarchyLevel": 4,
            "fiberNumber": 1,
            "looseNumber": 1,
            "implanted": bool(net.prop_implanted[k]),
            "length": length,
            "ground_length": length,
            "altitude_length": 0,
            "loss": round(length / 1000 * 0.4, 4),
            "orientationA": "",
            "orientationB": "",
            "poles": [],
            "ducts": [],
            "tags": [],
            "observation": "",
            "createdAt": BASE_TIME,
            "updatedAt": BASE_TIME,
        }

    def fiber(self, k: int) -> Doc:
        net = self.net
        s = int(net.prop_spl[k])
        b = int(net.spl_box[s])
        return {
            "id": make_id("fibers", k),
            "kind": "Fiber",
            "name": "1",
            "parent": make_id("cables", k),
            "project": self.proj_ids[int(net.box_project[b])],
            "fiberNumber": 1,
            "isDrop": True,
            "connectors": [make_id("splitters", s)],
            "observation": "",
            "createdAt": BASE_TIME,
            "updatedAt": BASE_TIME,
        }
