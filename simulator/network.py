"""Seeded, reproducible OZmap network generator, compact enough for 1,000,000 boxes.

The generated bulk lives in numpy arrays (one row per box, splitter and occupied port); the
JSON objects the API returns are built on demand by :mod:`simulator.store`. Only the small
catalogues (projects, box/cable/splitter types) are plain dicts, built by
:mod:`simulator.catalogues` from its reference data; ids are :mod:`simulator.ids`.

Layout of the arrays (all sorted so that ranges are contiguous):

* boxes ``b``: coordinates, project (city), type, draft/implanted/certified flags;
* splitters ``s``: ``spl_box`` sorted by box, so a box's splitters are ``box_spl_start[b] :
  box_spl_start[b+1]``; ``spl_out`` (8/16), ``spl_isdrop``, bitmasks of blocked and
  occupied output ports (bit ``p-1`` = port ``p``);
* occupied ports ``k`` (one generated property + FTTH client + drop cable + fiber each):
  ``prop_spl`` sorted by splitter, ``prop_port`` (1-based), client ``prop_implanted``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.catalogues import CITIES, POLE_TYPES, SPLITTER_TYPES, fill_catalogues
from simulator.poles import Poles, build_poles


@dataclass
class NetworkState:
    """The generated network: numpy arrays for the bulk, dicts for the catalogues."""

    boxes_requested: int
    seed: int
    # boxes
    box_lng: np.ndarray
    box_lat: np.ndarray
    box_project: np.ndarray  # int16 city index
    box_type: np.ndarray  # int8 index into BOX_TYPES
    box_draft: np.ndarray  # bool
    box_implanted: np.ndarray  # bool
    box_certified: np.ndarray  # bool
    box_seq: np.ndarray  # int32 number of the box inside its city (for the name)
    box_spl_start: np.ndarray  # int64, len n_boxes + 1
    # splitters
    spl_box: np.ndarray  # int32
    spl_type: np.ndarray  # int8 index into SPLITTER_TYPES
    spl_blocked: np.ndarray  # uint16 bitmask
    spl_occ: np.ndarray  # uint16 bitmask (generated occupancy)
    spl_prop_start: np.ndarray  # int64, len n_splitters + 1
    # occupied ports / generated properties
    prop_spl: np.ndarray  # int32
    prop_port: np.ndarray  # int8, 1-based
    prop_implanted: np.ndarray  # bool, the FTTH client's implanted flag
    # poles (see simulator.poles) and the pole each box stands on
    poles: Poles
    # catalogues
    projects: list[dict[str, Any]] = field(default_factory=list)
    box_types: list[dict[str, Any]] = field(default_factory=list)
    cable_types: list[dict[str, Any]] = field(default_factory=list)
    splitter_types: list[dict[str, Any]] = field(default_factory=list)
    fiber_profiles: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    pole_types: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_boxes(self) -> int:
        return int(self.box_lng.shape[0])

    @property
    def n_poles(self) -> int:
        return int(self.poles.lng.shape[0])

    @property
    def box_pole(self) -> np.ndarray:
        return self.poles.box_pole

    @property
    def n_splitters(self) -> int:
        return int(self.spl_box.shape[0])

    @property
    def n_props(self) -> int:
        return int(self.prop_spl.shape[0])

    @property
    def spl_out(self) -> np.ndarray:
        return _SPL_OUT[self.spl_type]

    @property
    def spl_isdrop(self) -> np.ndarray:
        return _SPL_ISDROP[self.spl_type]

    def nbytes(self) -> int:
        """Memory held by the arrays."""
        arrays = [*vars(self).values(), *vars(self.poles).values()]
        return sum(v.nbytes for v in arrays if isinstance(v, np.ndarray))

    def counts(self) -> dict[str, int]:
        return {
            "projects": len(self.projects),
            "box-types": len(self.box_types),
            "cable-types": len(self.cable_types),
            "splitter-types": len(self.splitter_types),
            "pole-types": len(self.pole_types),
            "poles": self.n_poles,
            "boxes": self.n_boxes,
            "splitters": self.n_splitters,
            "properties": self.n_props,
            "ftth-clients": self.n_props,
            "cables": self.n_props,
            "fibers": self.n_props,
        }


_SPL_OUT = np.array([t[2] for t in SPLITTER_TYPES], dtype=np.int8)
_SPL_ISDROP = np.array([t[1] for t in SPLITTER_TYPES], dtype=bool)


def generate_network(boxes: int, seed: int) -> NetworkState:
    """Generate ``boxes`` boxes around Brazilian cities; same (boxes, seed) → same network."""
    if boxes < 0:
        raise ValueError(f"boxes must be >= 0, got {boxes}")
    rng = np.random.default_rng(seed)
    n = int(boxes)
    n_cities = len(CITIES)
    weights = np.array([c.weight for c in CITIES])
    weights = weights / weights.sum()
    per_city = rng.multinomial(n, weights)
    box_project = np.repeat(np.arange(n_cities, dtype=np.int16), per_city)

    # Two-level clusters: neighbourhoods around each city centre, boxes around neighbourhoods.
    n_hoods = 24
    hood_dx = (
        rng.normal(0.0, 1.0, size=(n_cities, n_hoods))
        * np.array([c.radius_m for c in CITIES])[:, None]
        * 0.5
    )
    hood_dy = (
        rng.normal(0.0, 1.0, size=(n_cities, n_hoods))
        * np.array([c.radius_m for c in CITIES])[:, None]
        * 0.5
    )
    hood = rng.integers(0, n_hoods, size=n)
    # Denser cities keep streets tight: spread grows slowly with the number of boxes.
    spread = 250.0 + 900.0 * min(1.0, math.sqrt(max(n, 1) / 200_000))
    dx = hood_dx[box_project, hood] + rng.normal(0.0, spread, size=n)
    dy = hood_dy[box_project, hood] + rng.normal(0.0, spread, size=n)
    # Every box stands on a pole of its city's street grid: the pole's coordinates are its own.
    poles = build_poles(
        box_project,
        dx,
        dy,
        np.array([c.lat for c in CITIES]),
        np.array([c.lng for c in CITIES]),
        seed,
        len(POLE_TYPES),
    )
    box_lat = poles.lat[poles.box_pole]
    box_lng = poles.lng[poles.box_pole]

    box_type = (rng.random(n) < 0.08).astype(np.int8)  # 8 % splice closures (CE)
    box_draft = rng.random(n) < 0.05
    box_implanted = ~box_draft & (rng.random(n) < 0.95)
    box_certified = box_implanted & (rng.random(n) < 0.6)
    # Per-city sequence number for readable names (CTO-SPO-00042).
    starts = np.concatenate([[0], np.cumsum(per_city)[:-1]])
    box_seq = (np.arange(n) - np.repeat(starts, per_city) + 1).astype(np.int32)

    # Splitters: CTO → 1 customer splitter (1x8 / 1x16), 15 % a second one, 25 % a network
    # splitter; CE → one network splitter.
    is_cto = box_type == 0
    drop1 = np.where(rng.random(n) < 0.55, 0, 1).astype(np.int8)  # 1x8 or 1x16
    has_drop2 = is_cto & (rng.random(n) < 0.15)
    has_net = is_cto & (rng.random(n) < 0.25)
    n_spl_per_box = is_cto.astype(np.int64) + has_drop2 + has_net + (~is_cto)
    box_spl_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_spl_per_box, out=box_spl_start[1:])
    s_total = int(box_spl_start[-1])
    spl_box = np.repeat(np.arange(n, dtype=np.int32), n_spl_per_box)
    slot = np.arange(s_total, dtype=np.int64) - box_spl_start[spl_box]
    # slot 0: drop1 for CTO / network 1x8 for CE; then drop2 (if any); then network.
    b_is_cto = is_cto[spl_box]
    b_has_drop2 = has_drop2[spl_box]
    spl_type = np.full(s_total, 2, dtype=np.int8)
    first = slot == 0
    spl_type[first & b_is_cto] = drop1[spl_box[first & b_is_cto]]
    second_drop = (slot == 1) & b_has_drop2
    spl_type[second_drop] = (1 - drop1[spl_box[second_drop]]).astype(np.int8)
    net_cto = b_is_cto & ~first & ~second_drop
    spl_type[net_cto] = np.where(rng.random(int(net_cto.sum())) < 0.5, 2, 3).astype(np.int8)

    out = _SPL_OUT[spl_type].astype(np.int64)
    isdrop = _SPL_ISDROP[spl_type]
    port_bits = np.arange(16, dtype=np.int64)
    valid = port_bits[None, :] < out[:, None]
    r = rng.random((s_total, 16), dtype=np.float32)
    # Occupancy per box varies (some boxes full, some empty); none in draft boxes.
    fill = rng.beta(2.0, 2.5, size=n).astype(np.float32)
    fill[box_draft] = 0.0
    fill[~box_implanted] *= 0.3
    p_occ = fill[spl_box]
    blocked = valid & isdrop[:, None] & (r < 0.04)
    occupied = valid & isdrop[:, None] & ~blocked & (r >= 0.04) & (r < 0.04 + p_occ[:, None])
    spl_blocked = _bitmask16(blocked)
    spl_occ = _bitmask16(occupied)

    prop_spl_i, prop_bit = np.nonzero(occupied)
    prop_spl = prop_spl_i.astype(np.int32)
    prop_port = (prop_bit + 1).astype(np.int8)
    per_spl = np.bincount(prop_spl, minlength=s_total) if s_total else np.zeros(0, np.int64)
    spl_prop_start = np.zeros(s_total + 1, dtype=np.int64)
    np.cumsum(per_spl, out=spl_prop_start[1:])
    # Clients of implanted boxes are mostly active; elsewhere they are reservations.
    impl_p = np.where(box_implanted[spl_box[prop_spl]], 0.85, 0.0)
    prop_implanted = rng.random(prop_spl.shape[0]) < impl_p

    state = NetworkState(
        boxes_requested=n,
        seed=seed,
        box_lng=box_lng,
        box_lat=box_lat,
        box_project=box_project,
        box_type=box_type,
        box_draft=box_draft,
        box_implanted=box_implanted,
        box_certified=box_certified,
        box_seq=box_seq,
        box_spl_start=box_spl_start,
        spl_box=spl_box,
        spl_type=spl_type,
        spl_blocked=spl_blocked,
        spl_occ=spl_occ,
        spl_prop_start=spl_prop_start,
        prop_spl=prop_spl,
        prop_port=prop_port,
        prop_implanted=prop_implanted,
        poles=poles,
    )
    fill_catalogues(rng, state)
    return state


def _bitmask16(bits: np.ndarray) -> np.ndarray:
    """(S, 16) bool → uint16 with bit p set for column p (no big temporaries)."""
    packed = np.packbits(bits, axis=1, bitorder="little")  # (S, 2) uint8
    return (packed[:, 0].astype(np.uint16) | (packed[:, 1].astype(np.uint16) << 8)).astype(
        np.uint16
    )


def mix64(*values: int) -> int:
    """Deterministic 64-bit hash (splitmix64 chain) for per-object pseudo-random details."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (v & 0xFFFFFFFFFFFFFFFF)) & 0xFFFFFFFFFFFFFFFF
        x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x


_U64 = np.uint64


def mix64_many(seed: int, tag: int, ks: np.ndarray) -> list[int]:
    """``[mix64(seed, tag, k) for k in ks]`` computed in uint64 arrays (wraps like the masks)."""
    golden = _U64(0x9E3779B97F4A7C15)
    out = np.full(len(ks), golden, dtype=np.uint64)
    for v in (np.full(len(ks), seed & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64),
              np.full(len(ks), tag & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64),
              np.asarray(ks, dtype=np.int64).astype(np.uint64)):  # fmt: skip
        out ^= v
        out += golden
        out = (out ^ (out >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        out = (out ^ (out >> _U64(27))) * _U64(0x94D049BB133111EB)
        out ^= out >> _U64(31)
    return [int(h) for h in out.tolist()]
