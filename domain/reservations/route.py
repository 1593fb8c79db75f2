"""The drop route of a reservation along the poles ("rota do drop pelos postes").

`mode="poles"`: the shortest route from the installation address to the chosen box over the
cached poles (as feasibility in pole mode finds it); an explicit `drop_poles` list: checked as
a chain of adjacent usable poles from the box's pole. The route is kept on the reservation and
sent to OZmap, which draws the drop cable along it; reconciliation does not compare it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from domain.errors import InvalidInput
from domain.feasibility.pole_query import PoleNetwork, RouteMode

# How far a route is searched when the box's project sets no maximum drop size.
DEFAULT_ROUTE_BOUND_M: Final = 3000.0
MAX_DROP_POLES: Final = 500


@dataclass(frozen=True, slots=True)
class DropRoute:
    length_m: float
    poles: tuple[str, ...]  # from the box's pole to the pole next to the customer


def drop_route(
    network: PoleNetwork | None,
    box_id: str,
    lat: float,
    lng: float,
    *,
    mode: str | None = None,
    drop_poles: Sequence[str] | None = None,
) -> DropRoute | None:
    """The route a reservation asks for (None: a straight drop, as before)."""
    how = (mode or RouteMode.RADIUS).strip().lower()
    if how not in RouteMode.ALL:
        raise InvalidInput(
            f"mode must be one of {', '.join(RouteMode.ALL)} (got {mode!r})", field="mode"
        )
    if drop_poles is None and how == RouteMode.RADIUS:
        return None
    if network is None:  # a refusal of this request (422), not an outage (5xx)
        raise InvalidInput(
            "a drop along the poles needs the poles: the network cache has none",
            field="drop_poles" if drop_poles is not None else "mode",
            hint="run a network refresh (`erp-ozmap network refresh --full`), or reserve "
            "without mode/drop_poles",
        )
    if drop_poles is not None:
        if len(drop_poles) > MAX_DROP_POLES:
            raise InvalidInput(
                f"drop_poles lists {len(drop_poles)} poles; at most {MAX_DROP_POLES}",
                field="drop_poles",
            )
        poles = tuple(drop_poles)
        return DropRoute(network.explicit_route_m(lat, lng, box_id, poles), poles)
    # A route longer than the project allows is found, then refused with the reason.
    hit = network.route_to_box(lat, lng, box_id, DEFAULT_ROUTE_BOUND_M)
    if hit is None:
        raise InvalidInput(
            f"no route along the poles from the customer's address to box {box_id} "
            f"within {DEFAULT_ROUTE_BOUND_M:g} m",
            field="box_id",
            hint="choose a box that feasibility in mode=poles offers, or give drop_poles",
        )
    if not hit.viable:
        raise InvalidInput(
            f"box {box_id}: {hit.reason}", field="box_id", hint="choose a nearer box"
        )
    return DropRoute(hit.route_m, hit.drop_poles)
