"""Seeded, reproducible OZmap network generator, compact enough for 1,000,000 boxes.

The generated bulk lives in numpy arrays (one row per box, splitter and occupied port); the
JSON objects the API returns are built on demand by :mod:`simulator.store`. Only the small
catalogues (projects, box/cable/splitter types) are plain dicts.

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

# Every generated object shares this timestamp; anything changed later is newer.
BASE_TIME = "2024-01-01T00:00:00.000Z"

MODEL_CODES: dict[str, int] = {
    "projects": 0x01,
    "box-types": 0x02,
    "cable-types": 0x03,
    "boxes": 0x04,
    "splitters": 0x05,
    "properties": 0x06,
    "ftth-clients": 0x07,
    "cables": 0x08,
    "fibers": 0x09,
    "splitter-types": 0x0A,
    "fiber-profiles": 0x0B,
    "users": 0x0C,
}
CODE_MODELS: dict[int, str] = {v: k for k, v in MODEL_CODES.items()}
# Objects created through the API are numbered from here, so they sort after generated ones.
CREATED_BASE = 1 << 40


_ID_PREFIX: dict[str, str] = {m: f"65{c:02x}0000" for m, c in MODEL_CODES.items()}


def make_id(model: str, n: int) -> str:
    """24-hex object id (Mongo ObjectId look-alike): model tag + sequence number."""
    return _ID_PREFIX[model] + format(n, "016x")


def parse_id(value: Any) -> tuple[str, int] | None:
    """(model, sequence number) of an id made by :func:`make_id`, None for anything else."""
    if not isinstance(value, str) or len(value) != 24 or not value.startswith("65"):
        return None
    try:
        code = int(value[2:4], 16)
        if value[4:8] != "0000":
            return None
        n = int(value[8:], 16)
    except ValueError:
        return None
    model = CODE_MODELS.get(code)
    return (model, n) if model else None


@dataclass(frozen=True)
class City:
    name: str
    uf: str
    code: str
    lat: float
    lng: float
    weight: float  # share of the boxes
    radius_m: float  # spread of the neighbourhoods around the centre


CITIES: tuple[City, ...] = (
    City("São Paulo", "SP", "SPO", -23.5505, -46.6333, 0.22, 14000),
    City("Rio de Janeiro", "RJ", "RIO", -22.9068, -43.1729, 0.13, 12000),
    City("Belo Horizonte", "MG", "BHZ", -19.9167, -43.9345, 0.08, 8000),
    City("Curitiba", "PR", "CWB", -25.4284, -49.2733, 0.07, 7000),
    City("Porto Alegre", "RS", "POA", -30.0346, -51.2177, 0.06, 7000),
    City("Recife", "PE", "REC", -8.0476, -34.8770, 0.06, 6000),
    City("Fortaleza", "CE", "FOR", -3.7319, -38.5267, 0.07, 7000),
    City("Salvador", "BA", "SSA", -12.9777, -38.5016, 0.07, 7000),
    City("Goiânia", "GO", "GYN", -16.6869, -49.2648, 0.05, 6000),
    City("Campinas", "SP", "CPQ", -22.9099, -47.0626, 0.05, 5000),
    City("Brasília", "DF", "BSB", -15.7939, -47.8828, 0.05, 9000),
    City("Manaus", "AM", "MAO", -3.1190, -60.0217, 0.03, 6000),
    City("Belém", "PA", "BEL", -1.4558, -48.4902, 0.03, 5000),
    City("Florianópolis", "SC", "FLN", -27.5954, -48.5480, 0.03, 5000),
)

STREETS = (
    "Rua das Flores",
    "Avenida Brasil",
    "Rua São João",
    "Rua XV de Novembro",
    "Avenida Paulista",
    "Rua Sete de Setembro",
    "Rua Tiradentes",
    "Avenida Getúlio Vargas",
    "Rua Dom Pedro II",
    "Rua Santos Dumont",
    "Rua Barão do Rio Branco",
    "Avenida Rio Branco",
    "Rua José Bonifácio",
    "Rua Marechal Deodoro",
    "Rua Duque de Caxias",
    "Rua Castro Alves",
)
FIRST_NAMES = (
    "Ana",
    "João",
    "Maria",
    "José",
    "Francisca",
    "Antônio",
    "Adriana",
    "Carlos",
    "Juliana",
    "Paulo",
    "Márcia",
    "Lucas",
    "Fernanda",
    "Rafael",
    "Patrícia",
    "Bruno",
)
LAST_NAMES = (
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Rodrigues",
    "Ferreira",
    "Alves",
    "Pereira",
    "Lima",
    "Gomes",
    "Costa",
    "Ribeiro",
    "Martins",
    "Carvalho",
    "Almeida",
    "Lopes",
)

# Cable types: (code, fiberNumber, looseNumber, is_drop, base_loss, default_level)
CABLE_TYPES: tuple[tuple[str, int, int, bool, float, int], ...] = (
    ("AS80 12FO", 12, 1, False, 0.35, 2),
    ("AS80 36FO", 36, 3, False, 0.35, 2),
    ("AS120 72FO", 72, 6, False, 0.35, 1),
    ("Drop 1FO", 1, 1, True, 0.4, 4),
    ("Drop 2FO", 2, 1, True, 0.4, 4),
    ("Drop Flat 1FO", 1, 1, True, 0.4, 4),
    ("Drop Flat 2FO", 2, 1, True, 0.4, 4),
    ("Drop Low Friction 1FO", 1, 1, True, 0.4, 4),
)
DROP_CABLE_TYPE_IDX = (3, 5, 7)  # default drop types handed out to projects

# Box types: (code, prefix, default_level, description)
BOX_TYPES: tuple[tuple[str, str, int, str], ...] = (
    ("CTO", "CTO-", 3, "Caixa de Terminação Óptica"),
    ("CE", "CE-", 2, "Caixa de Emenda"),
)

# Splitter types: (code, isDrop, output, attenuation dB)
SPLITTER_TYPES: tuple[tuple[str, bool, int, float], ...] = (
    ("1x8 Atendimento", True, 8, 10.5),
    ("1x16 Atendimento", True, 16, 13.7),
    ("1x8 Rede", False, 8, 10.5),
    ("1x4 Rede", False, 4, 7.2),
)

EARTH_RADIUS_M = 6371000.0


def _iso(ts: str = BASE_TIME) -> str:
    return ts


def _meta(model: str, n: int) -> dict[str, Any]:
    return {"id": make_id(model, n), "createdAt": BASE_TIME, "updatedAt": BASE_TIME}


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
    # catalogues
    projects: list[dict[str, Any]] = field(default_factory=list)
    box_types: list[dict[str, Any]] = field(default_factory=list)
    cable_types: list[dict[str, Any]] = field(default_factory=list)
    splitter_types: list[dict[str, Any]] = field(default_factory=list)
    fiber_profiles: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_boxes(self) -> int:
        return int(self.box_lng.shape[0])

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
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))

    def counts(self) -> dict[str, int]:
        return {
            "projects": len(self.projects),
            "box-types": len(self.box_types),
            "cable-types": len(self.cable_types),
            "splitter-types": len(self.splitter_types),
            "boxes": self.n_boxes,
            "splitters": self.n_splitters,
            "properties": self.n_props,
            "ftth-clients": self.n_props,
            "cables": self.n_props,
            "fibers": self.n_props,
        }


_SPL_OUT = np.array([t[2] for t in SPLITTER_TYPES], dtype=np.int8)
_SPL_ISDROP = np.array([t[1] for t in SPLITTER_TYPES], dtype=bool)


def _catalogues(rng: np.random.Generator, state: NetworkState) -> None:
    state.fiber_profiles = [
        {
            **_meta("fiber-profiles", 0),
            "name": "ABNT",
            "defaultFiberColor": "white",
            "defaultTubeColor": "white",
            "fibers": [{"color": c} for c in ("green", "yellow", "white", "blue")],
            "tubes": [{"color": c} for c in ("green", "yellow", "white", "blue")],
        }
    ]
    profile_id = state.fiber_profiles[0]["id"]
    state.cable_types = []
    for i, (code, fibers, loose, is_drop, loss, level) in enumerate(CABLE_TYPES):
        state.cable_types.append(
            {
                **_meta("cable-types", i),
                "code": code,
                "kind": "Drop" if is_drop else "Cable",
                "category": "drop" if is_drop else "cable",
                "isDrop": is_drop,
                "brand": "Furukawa" if i % 2 else "Prysmian",
                "mold": code,
                "description": ("Cabo drop " if is_drop else "Cabo óptico ") + code,
                "default_level": level,
                "fiberNumber": fibers,
                "looseNumber": loose,
                "base_loss": loss,
                "fiberProfile": profile_id,
                "config": {
                    "regular": {"color": "#000000FF" if is_drop else "#3388FFFF", "weight": 2},
                    "not_implanted": {"color": "#FFA500A6", "weight": 2},
                },
            }
        )
    state.box_types = [
        {
            **_meta("box-types", i),
            "code": code,
            "prefix": prefix,
            "default_level": level,
            "default_reserve": 0,
            "description": desc,
            "brand": "FiberHome",
            "mold": code,
            "config": {
                "base": {"color": "#3388FFFF"},
                "regular": {"fillColor": "#3388FFFF"},
                "not_implanted": {"fillColor": "#FFA500A6"},
                "draft": {"fillColor": "#FFA500A6"},
            },
        }
        for i, (code, prefix, level, desc) in enumerate(BOX_TYPES)
    ]
    state.splitter_types = [
        {
            **_meta("splitter-types", i),
            "code": code,
            "isDrop": is_drop,
            "ratio": {"input": 1, "output": out},
            "isBalanced": True,
            "prefix": "Splitter ",
            "size": 0,
            "inputConnectionType": 0,
            "outputConnectionType": 1 if is_drop else 0,
            "attenuation": [att] * out,
        }
        for i, (code, is_drop, out, att) in enumerate(SPLITTER_TYPES)
    ]
    state.users = [
        {
            **_meta("users", 0),
            "name": "Integração ERP",
            "username": "integracao",
            "email": "integracao@example.com",
            "isAPI": True,
        }
    ]
    state.projects = []
    drop_choice = rng.integers(0, len(DROP_CABLE_TYPE_IDX), size=len(CITIES))
    for i, city in enumerate(CITIES):
        mask = state.box_project == i
        if mask.any():
            lng0, lng1 = float(state.box_lng[mask].min()), float(state.box_lng[mask].max())
            lat0, lat1 = float(state.box_lat[mask].min()), float(state.box_lat[mask].max())
        else:
            lng0 = lng1 = city.lng
            lat0 = lat1 = city.lat
        pad = 0.01
        ring = [
            [lng0 - pad, lat0 - pad],
            [lng1 + pad, lat0 - pad],
            [lng1 + pad, lat1 + pad],
            [lng0 - pad, lat1 + pad],
            [lng0 - pad, lat0 - pad],
        ]
        drop_type = state.cable_types[DROP_CABLE_TYPE_IDX[int(drop_choice[i])]]["id"]
        state.projects.append(
            {
                **_meta("projects", i),
                "name": f"FTTH {city.name} - {city.uf}",
                "identifier": city.code,
                "city": city.name,
                "state": city.uf,
                "lat": city.lat,
                "lng": city.lng,
                "parents": [],
                "hasLogo": False,
                "defaultPonPotency": -20,
                "defaultDropSize": 50,
                "drop": {"type": {"cableType": drop_type}, "cableType": drop_type, "maxSize": 250},
                "defaults": {"cableType": drop_type},
                "area": {"type": "Polygon", "coordinates": [ring]},
            }
        )


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
    lat0 = np.array([c.lat for c in CITIES])[box_project]
    lng0 = np.array([c.lng for c in CITIES])[box_project]
    m_per_deg_lat = 111_320.0
    box_lat = lat0 + dy / m_per_deg_lat
    box_lng = lng0 + dx / (m_per_deg_lat * np.cos(np.radians(lat0)))
    # Snap to 7 decimals (≈1 cm), as coordinates typed in a GIS would be.
    box_lat = np.round(box_lat, 7)
    box_lng = np.round(box_lng, 7)

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
    )
    _catalogues(rng, state)
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
