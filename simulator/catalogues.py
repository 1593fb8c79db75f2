"""Reference data the generator draws from and the catalogue documents built from it.

Cities (one project each), street and person names, cable / box / splitter types; the
catalogue documents (projects, box/cable/splitter types, fiber profile, API user) are small
plain dicts, unlike the generated bulk (see :mod:`simulator.network`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simulator.ids import generated_meta

if TYPE_CHECKING:
    from simulator.network import NetworkState


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

# Pole types: (name, prefix, description)
POLE_TYPES: tuple[tuple[str, str, str], ...] = (
    ("Poste de concreto", "PC_", "Poste de concreto circular 11 m"),
    ("Poste de madeira", "PM_", "Poste de madeira 9 m"),
)
# A project's maximum drop size (metres) is drawn from this range, in steps of 10 m.
DROP_MAX_SIZE_M = (150, 400)


def fill_catalogues(rng: np.random.Generator, state: NetworkState) -> None:
    """Set the catalogue lists of state (projects cover their city's boxes)."""
    state.fiber_profiles = [
        {
            **generated_meta("fiber-profiles", 0),
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
                **generated_meta("cable-types", i),
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
            **generated_meta("box-types", i),
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
            **generated_meta("splitter-types", i),
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
            **generated_meta("users", 0),
            "name": "Integração ERP",
            "username": "integracao",
            "email": "integracao@example.com",
            "isAPI": True,
        }
    ]
    state.pole_types = [
        {
            **generated_meta("pole-types", i),
            "name": name,
            "prefix": prefix,
            "viabilityAllowed": True,
            "color": "#3388FF",
            "description": desc,
        }
        for i, (name, prefix, desc) in enumerate(POLE_TYPES)
    ]
    state.projects = []
    drop_choice = rng.integers(0, len(DROP_CABLE_TYPE_IDX), size=len(CITIES))
    lo, hi = DROP_MAX_SIZE_M
    max_sizes = rng.integers(lo // 10, hi // 10 + 1, size=len(CITIES))
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
        max_size = int(max_sizes[i]) * 10
        state.projects.append(
            {
                **generated_meta("projects", i),
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
                "drop": {
                    "type": {"cableType": drop_type},
                    "cableType": drop_type,
                    "maxSize": max_size,
                },
                "defaults": {"cableType": drop_type},
                "area": {"type": "Polygon", "coordinates": [ring]},
            }
        )
