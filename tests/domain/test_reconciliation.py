"""The reconciliation diff over plain data: merging, every class, in-flight, repair plans."""

from __future__ import annotations

import pytest

from domain.reconciliation.classes import DiscrepancyClass as K
from domain.reconciliation.diff import (
    ErpSide,
    OzSide,
    PortLookupState,
    PortView,
    Tally,
    classify,
    diff,
    merge_by_code,
    prefix_filter,
)
from domain.reconciliation.repair_plan import NotRepairable, ReserveDetails, plan_repair
from models import OutboxKind


def erp(code: str = "ERP-1-1", status: str = "reserved", **kw: object) -> ErpSide:
    base: dict[str, object] = {
        "reservation_id": 1,
        "code": code,
        "status": status,
        "cancel_scope": None,
        "project_id": "p1",
        "box_id": "b1",
        "splitter_id": "s1",
        "port": 3,
        "cable_type_id": "c1" if status == "active" else None,
    }
    base.update(kw)
    return ErpSide(**base)  # type: ignore[arg-type]


def oz(code: str = "ERP-1-1", implanted: bool = False, **kw: object) -> OzSide:
    base: dict[str, object] = {
        "property_id": "prop1",
        "code": code,
        "client_id": "cli1",
        "project_id": "p1",
        "box_id": "b1",
        "splitter_id": "s1",
        "port": 3,
        "implanted": implanted,
        "cable_type_id": "c1",
    }
    base.update(kw)
    return OzSide(**base)  # type: ignore[arg-type]


def free(_box: str, _splitter: str, _port: int) -> PortView:
    return PortView(PortLookupState.FREE)


def classes(findings: list) -> list[K]:
    return [f.klass for f in findings]


# --- merge ---------------------------------------------------------------------------------


def test_merge_pairs_sorted_streams_and_groups_duplicates() -> None:
    e = [erp("A"), erp("C"), erp("E")]
    o = [oz("B"), oz("C"), oz("E", property_id="x"), oz("E", property_id="y"), oz("F")]
    got = [(code, r.code if r else None, [x.property_id for x in g]) for code, r, g in
           merge_by_code(e, o)]  # fmt: skip
    assert got == [
        ("A", "A", []),
        ("B", None, ["prop1"]),
        ("C", "C", ["prop1"]),
        ("E", "E", ["x", "y"]),
        ("F", None, ["prop1"]),
    ]


def test_merge_refuses_unsorted_input_instead_of_a_wrong_diff() -> None:
    with pytest.raises(ValueError, match="ERP stream"):
        list(merge_by_code([erp("B"), erp("A")], []))
    with pytest.raises(ValueError, match="OZmap stream"):
        list(merge_by_code([], [oz("B"), oz("A")]))


def test_merge_is_lazy() -> None:
    def endless_erp():
        n = 0
        while True:
            n += 1
            yield erp(f"C{n:09d}")

    it = merge_by_code(endless_erp(), iter([]))
    assert [next(it)[0] for _ in range(3)] == ["C000000001", "C000000002", "C000000003"]


# --- classes -------------------------------------------------------------------------------


def test_in_step_reservations_have_no_discrepancy() -> None:
    assert classify(erp(), [oz()]) == []
    assert classify(erp(status="active"), [oz(implanted=True)]) == []
    assert classify(erp(status="cancelled", cancel_scope="erp_and_ozmap"), []) == []
    assert classify(erp(status="cancelled", cancel_scope="erp_only"), []) == []


def test_active_in_erp_but_not_implanted_is_a_repairable_activation() -> None:
    (f,) = classify(erp(status="active"), [oz(implanted=False)])
    assert f.klass is K.ACTIVATION_MISSING and f.repairable and f.severity == "error"


def test_missing_in_ozmap_is_repairable_only_when_the_port_is_free() -> None:
    (f,) = classify(erp(), [], free)
    assert f.klass is K.MISSING_IN_OZMAP and f.repairable
    assert f.ozmap_values() == {"port": {"state": "free"}}

    def taken(*_a: object) -> PortView:
        return PortView(PortLookupState.OCCUPIED, "SIM-0000001", "prop9")

    (f,) = classify(erp(status="active"), [], taken)
    assert f.klass is K.PORT_TAKEN and not f.repairable
    assert "SIM-0000001" in f.message
    (f,) = classify(erp(), [], lambda *_a: PortView(PortLookupState.BLOCKED))
    assert f.klass is K.PORT_TAKEN
    (f,) = classify(erp(), [], lambda *_a: PortView(PortLookupState.NOT_FOUND))
    assert f.klass is K.PORT_NOT_FOUND and not f.repairable


def test_cancelled_in_both_but_still_in_ozmap_is_a_repairable_delete() -> None:
    (f,) = classify(erp(status="cancelled", cancel_scope="erp_and_ozmap"), [oz()])
    assert f.klass is K.CANCEL_NOT_APPLIED and f.repairable
    # Even duplicated or moved: cancelling deletes every property of the code.
    two = [oz(property_id="a"), oz(property_id="b", port=4)]
    (f,) = classify(erp(status="cancelled", cancel_scope="erp_and_ozmap"), two)
    assert f.klass is K.CANCEL_NOT_APPLIED


def test_cancelled_in_the_erp_only_is_expected_info() -> None:
    (f,) = classify(erp(status="cancelled", cancel_scope="erp_only"), [oz(implanted=True)])
    assert f.klass is K.CANCELLED_ERP_ONLY and f.severity == "info" and not f.repairable


def test_orphans_are_reported_never_repaired_and_the_prefix_decides() -> None:
    (f,) = classify(None, [oz("ERP-77-1")], is_erp_code=prefix_filter("ERP-"))
    assert f.klass is K.ORPHAN and not f.repairable and f.erp is None
    assert classify(None, [oz("SIM-0000001")], is_erp_code=prefix_filter("ERP-")) == []
    (f,) = classify(None, [oz("SIM-0000001")], is_erp_code=prefix_filter(None))
    assert f.klass is K.ORPHAN
    with pytest.raises(NotRepairable):
        plan_repair(1, K.ORPHAN, erp())


def test_client_on_another_port_or_box_is_reported_and_not_activated() -> None:
    (f,) = classify(erp(status="active"), [oz(port=4, implanted=False)])
    assert f.klass is K.LOCATION_MISMATCH and not f.repairable
    (f,) = classify(erp(), [oz(box_id="b2")])
    assert f.klass is K.LOCATION_MISMATCH
    assert "port 3" in f.message and "b2" in f.message


def test_several_ozmap_clients_for_one_code_are_reported() -> None:
    (f,) = classify(erp(), [oz(property_id="b"), oz(property_id="a", port=5)])
    assert f.klass is K.DUPLICATE_CLIENTS
    assert [p["property_id"] for p in f.ozmap_values()["properties"]] == ["a", "b"]


def test_drop_cable_type_differing_from_the_activated_one_is_reported() -> None:
    (f,) = classify(
        erp(status="active", cable_type_id="c1"), [oz(implanted=True, cable_type_id="c2")]
    )
    assert f.klass is K.DROP_CABLE_MISMATCH and not f.repairable
    # Nothing to compare when the ERP recorded no cable type.
    assert classify(erp(status="active", cable_type_id=None), [oz(implanted=True)]) == []


def test_implanted_in_ozmap_while_reserved_in_the_erp_is_reported() -> None:
    (f,) = classify(erp(), [oz(implanted=True)])
    assert f.klass is K.OZMAP_AHEAD and not f.repairable


def test_a_reservation_in_flight_is_info_not_drift() -> None:
    (f,) = classify(erp(in_flight=True), [], free)
    assert f.klass is K.IN_FLIGHT and f.underlying is K.MISSING_IN_OZMAP and not f.repairable
    assert f.ozmap_values()["would_be"] == "missing_in_ozmap"
    assert classify(erp(in_flight=True), [oz()]) == []


def test_diff_tallies_what_it_compared() -> None:
    rows = merge_by_code(
        [erp("ERP-1-1"), erp("ERP-2-1", status="active")],
        [oz("ERP-2-1"), oz("ERP-3-1"), oz("SIM-0000001")],
    )
    tally = Tally()
    found = list(diff(rows, free, is_erp_code=prefix_filter("ERP-"), tally=tally))
    assert classes(found) == [K.MISSING_IN_OZMAP, K.ACTIVATION_MISSING, K.ORPHAN]
    d = tally.to_dict()
    assert d["erp_reservations"] == 2 and d["ozmap_clients"] == 3 and d["matched"] == 1
    assert d["foreign_clients"] == 1 and d["discrepancies"] == 3 and d["repairable"] == 2
    assert d["by_class"]["orphan"] == 1 and d["by_class"]["port_taken"] == 0


# --- repair plans --------------------------------------------------------------------------

DETAILS = ReserveDetails("Maria Silva", -23.55, -46.63, "Rua X, 10 - Centro, São Paulo/SP")


def test_repair_plans_use_the_sync_payloads_and_deterministic_keys() -> None:
    (a,) = plan_repair(7, K.CANCEL_NOT_APPLIED, erp(status="cancelled"))
    assert a.kind is OutboxKind.CANCEL and a.payload == {"code": "ERP-1-1"}
    assert a.idempotency_key == "repair:7:ERP-1-1:cancel_not_applied:cancel"

    (a,) = plan_repair(7, K.ACTIVATION_MISSING, erp(status="active", cable_type_id="c9"))
    assert a.kind is OutboxKind.ACTIVATE
    assert a.payload == {"code": "ERP-1-1", "cable_type_id": "c9"}

    plan = plan_repair(7, K.MISSING_IN_OZMAP, erp(status="active"), details=DETAILS)
    assert [x.kind for x in plan] == [OutboxKind.RESERVE, OutboxKind.ACTIVATE]
    assert plan[0].payload == {
        "code": "ERP-1-1", "name": "Maria Silva", "project_id": "p1", "box_id": "b1",
        "splitter_id": "s1", "port": 3, "lat": -23.55, "lng": -46.63,
        "address": "Rua X, 10 - Centro, São Paulo/SP",
    }  # fmt: skip
    assert plan == plan_repair(7, K.MISSING_IN_OZMAP, erp(status="active"), details=DETAILS)
    assert len({x.idempotency_key for x in plan}) == 2


def test_repairs_that_cannot_be_done_safely_say_why() -> None:
    with pytest.raises(NotRepairable, match="address"):
        plan_repair(1, K.MISSING_IN_OZMAP, erp(), details=None)
    with pytest.raises(NotRepairable, match="cable"):
        plan_repair(1, K.ACTIVATION_MISSING, erp(status="active", cable_type_id=None))
    # The cable OZmap already has is good enough to re-send the activation.
    (a,) = plan_repair(
        1, K.ACTIVATION_MISSING, erp(status="active", cable_type_id=None), ozmap_cable_type_id="c3"
    )
    assert a.payload["cable_type_id"] == "c3"
    for k in (K.PORT_TAKEN, K.LOCATION_MISMATCH, K.DUPLICATE_CLIENTS, K.IN_FLIGHT):
        with pytest.raises(NotRepairable):
            plan_repair(1, k, erp())
