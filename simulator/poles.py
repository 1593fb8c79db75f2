"""Poles along a street grid per city, with gaps, and the box that stands on each one.

Each city has a square street grid (blocks of ``BLOCK`` pole spans, one span 33–45 m) in
metres around its centre. A box is snapped to the nearest street point of the grid and stands
on the pole there. Poles exist only around the blocks that hold a box (each block widened by
one block on every side), so a 300-box network has a few thousand poles and a 1M-box network
a few million. Adjacent poles are consecutive points of one street.

Gaps make the route along poles longer than the straight line: per city a river (east-west)
that vertical streets cross only at a few bridges, and a highway (north-south) that
horizontal streets cross only at a few overpasses. Everything is vectorised numpy.

Lattice: a point is integer ``(u, v)`` spans east/north of the centre; it is on a street when
``u % BLOCK == 0`` (north-south street) or ``v % BLOCK == 0`` (east-west street).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

M_PER_DEG_LAT = 111_320.0
BLOCK = 3  # pole spans per block side
_OFF = 1 << 21  # lattice offset so that (u, v) packs into non-negative bits
_SHIFT_U = 22
_SHIFT_CITY = 44
BRIDGE_EVERY = 12  # a bridge on every 12th north-south street
OVERPASS_EVERY = 15  # an overpass on every 15th east-west street
UNUSABLE_SHARE = 0.02


@dataclass
class Poles:
    """Pole arrays (sorted by city, then lattice position) and each box's pole."""

    lng: np.ndarray  # float64
    lat: np.ndarray  # float64
    project: np.ndarray  # int16 city index
    kind: np.ndarray  # int8 index into POLE_TYPES
    usable: np.ndarray  # bool
    adj_start: np.ndarray  # int64, len n + 1 (CSR)
    adj: np.ndarray  # int32 neighbour indices
    city_start: np.ndarray  # int64, len n_cities + 1
    box_pole: np.ndarray  # int32, the pole each box stands on


def _keys(city: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (
        (city.astype(np.int64) << _SHIFT_CITY)
        | ((u.astype(np.int64) + _OFF) << _SHIFT_U)
        | (v.astype(np.int64) + _OFF)
    )


def _unkey(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mask = (1 << _SHIFT_U) - 1
    city = keys >> _SHIFT_CITY
    u = ((keys >> _SHIFT_U) & mask) - _OFF
    v = (keys & mask) - _OFF
    return city, u, v


def _unique(a: np.ndarray) -> np.ndarray:
    """Sorted unique values (sort-based: faster than numpy's hash path on int64 keys)."""
    a = np.sort(a)
    if a.size:
        a = a[np.concatenate(([True], a[1:] != a[:-1]))]
    return a


def snap_to_street(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest street lattice point (u, v) of points (x, y) given in spans."""
    u = np.rint(x).astype(np.int64)
    v = np.rint(y).astype(np.int64)
    off = (u % BLOCK != 0) & (v % BLOCK != 0)
    # Off-street: move the coordinate that is closer to a street onto it.
    su = np.rint(x / BLOCK).astype(np.int64) * BLOCK
    sv = np.rint(y / BLOCK).astype(np.int64) * BLOCK
    to_u = off & (np.abs(x - su) <= np.abs(y - sv))
    to_v = off & ~to_u
    u[to_u] = su[to_u]
    v[to_v] = sv[to_v]
    return u, v


def build_poles(
    box_project: np.ndarray,
    dx: np.ndarray,
    dy: np.ndarray,
    city_lat: np.ndarray,
    city_lng: np.ndarray,
    seed: int,
    n_pole_types: int,
) -> Poles:
    """Poles around the boxes (given in metres east/north of their city centre)."""
    n_cities = int(city_lat.shape[0])
    rng = np.random.default_rng([seed, 0x901E])
    span = rng.uniform(33.0, 45.0, size=n_cities)  # metres between two poles, per city
    river_q = rng.integers(-4, 5, size=n_cities)  # block row the river runs through
    highway_p = rng.integers(-4, 5, size=n_cities)  # block column the highway runs through

    bc = box_project.astype(np.int64)
    bu, bv = snap_to_street(dx / span[bc], dy / span[bc])

    # Blocks holding a box, widened by one block: their boundaries carry the poles.
    bp = np.floor_divide(bu, BLOCK)
    bq = np.floor_divide(bv, BLOCK)
    d = np.array([-1, 0, 1])
    own = _unique(_keys(bc, bp, bq))
    oc, op, oq = _unkey(own)
    blocks = _unique(
        _keys(
            np.repeat(oc, 9),
            (op[:, None] + np.repeat(d, 3)[None, :]).ravel(),
            (oq[:, None] + np.tile(d, 3)[None, :]).ravel(),
        )
    )
    kc, kp, kq = _unkey(blocks)
    # The 4 * BLOCK boundary points of each block (corners once per side start).
    t = np.arange(BLOCK)
    side_u = np.concatenate([t, np.full(BLOCK, BLOCK), BLOCK - t, np.zeros(BLOCK, np.int64)])
    side_v = np.concatenate([np.zeros(BLOCK, np.int64), t, np.full(BLOCK, BLOCK), BLOCK - t])
    keys = _unique(
        _keys(
            np.repeat(kc, side_u.size),
            (kp[:, None] * BLOCK + side_u[None, :]).ravel(),
            (kq[:, None] * BLOCK + side_v[None, :]).ravel(),
        )
    )
    n = int(keys.size)
    pc, pu, pv = _unkey(keys)

    # Adjacency: the next point north on a north-south street, east on an east-west street.
    def _edges(step: int, on_street: np.ndarray, cut: np.ndarray) -> tuple[np.ndarray, ...]:
        want = keys + step
        j = np.searchsorted(keys, want)
        j = np.minimum(j, max(n - 1, 0))
        ok = on_street & (keys[j] == want) & ~cut if n else np.zeros(0, bool)
        return np.flatnonzero(ok), j[ok]

    # River between rows v = river*BLOCK + 1 and + 2: north-south streets cross at bridges.
    r_v = river_q[pc] * BLOCK + 1
    river_cut = (pv == r_v) & (np.floor_divide(pu, BLOCK) % BRIDGE_EVERY != 0)
    h_u = highway_p[pc] * BLOCK + 1
    highway_cut = (pu == h_u) & (np.floor_divide(pv, BLOCK) % OVERPASS_EVERY != 0)
    a1, b1 = _edges(1, pu % BLOCK == 0, river_cut)
    a2, b2 = _edges(1 << _SHIFT_U, pv % BLOCK == 0, highway_cut)
    src = np.concatenate([a1, b1, a2, b2])
    dst = np.concatenate([b1, a1, b2, a2])
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    adj_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=adj_start[1:])

    s = span[pc]
    lat0 = city_lat[pc]
    lat = np.round(lat0 + pv * s / M_PER_DEG_LAT, 7)
    lng = np.round(city_lng[pc] + pu * s / (M_PER_DEG_LAT * np.cos(np.radians(lat0))), 7)
    city_start = np.searchsorted(pc, np.arange(n_cities + 1)).astype(np.int64)
    box_pole = np.searchsorted(keys, _keys(bc, bu, bv)).astype(np.int32)
    return Poles(
        lng=lng,
        lat=lat,
        project=pc.astype(np.int16),
        kind=rng.integers(0, n_pole_types, size=n).astype(np.int8),
        usable=rng.random(n) >= UNUSABLE_SHARE,
        adj_start=adj_start,
        adj=dst.astype(np.int32),
        city_start=city_start,
        box_pole=box_pole,
    )
