"""`erp-ozmap customers ...`: the customers of the assisted sale ("Venda Assistida").

    erp-ozmap customers address 42 --street "Av. Paulista" --number 1000 \\
        --neighbourhood "Bela Vista" --city "São Paulo" --state SP --postal-code 01310-100 \\
        --lat -23.5613 --lng -46.6565
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import typer
from pydantic import ValidationError

from cli.common import fail, friendly_errors, print_json, record_id
from cli.reservations import AS_USER, acting
from domain import customers

app = typer.Typer(
    help="Customers of the assisted sale: change the installation address.",
    no_args_is_help=True,
)

# AddressIn's fields as the user typed them.
_OPTIONS = {
    "street": "--street",
    "number": "--number",
    "complement": "--complement",
    "neighbourhood": "--neighbourhood",
    "city": "--city",
    "state": "--state",
    "postal_code": "--postal-code",
    "latitude": "--lat",
    "longitude": "--lng",
}


def _address(values: dict[str, Any]) -> customers.AddressIn:
    try:
        return customers.AddressIn.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        raise fail(f"{_OPTIONS.get(name, name)}: {first['msg']}") from None


@app.command("address")
@friendly_errors
def address_cmd(
    customer_id: int = typer.Argument(..., help="customer id", callback=record_id("customer")),
    street: str = typer.Option(..., "--street"),
    number: str = typer.Option(..., "--number", help="house number ('S/N' if none)"),
    neighbourhood: str = typer.Option(..., "--neighbourhood", help="bairro"),
    city: str = typer.Option(..., "--city"),
    state: str = typer.Option(..., "--state", help="UF, e.g. SP"),
    postal_code: str = typer.Option(..., "--postal-code", help="CEP, 8 digits"),
    lat: float | None = typer.Option(None, "--lat", help="latitude in degrees (WGS84)"),
    lng: float | None = typer.Option(None, "--lng", help="longitude in degrees (WGS84)"),
    complement: str | None = typer.Option(None, "--complement"),
    as_user: str | None = AS_USER,
) -> None:
    """Change a customer's installation address, checked like at registration (sellers and
    admins); give --lat/--lng so feasibility can answer."""
    data = _address(
        {
            "street": street, "number": number, "complement": complement,
            "neighbourhood": neighbourhood, "city": city, "state": state,
            "postal_code": postal_code, "latitude": lat, "longitude": lng,
        }
    )  # fmt: skip
    with acting(as_user) as (session, actor):
        view = customers.update_address(
            session, customer_id, data, actor=actor, lat_field="--lat", lng_field="--lng"
        )
    print_json(asdict(view))
