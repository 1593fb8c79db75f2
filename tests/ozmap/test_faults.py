"""Fault handling: the client recovers from transient failures and reports permanent ones
clearly, never leaking the API key. Faults come from the simulator (switchable at run time)
or, for a response lost after OZmap processed the request, from a real transport that drops
the answer on the way back."""

from __future__ import annotations

import logging
import socket
import threading

import httpx
import pytest

from ozmap import OZmapClient
from ozmap.errors import OZmapUnavailable
from ozmap.filters import F

from .conftest import find_free_ports, make_client
from .test_client_writes import _clients_with_code, _reserve


@pytest.fixture
def faulty(ozmap_sim):
    """The shared simulator with faults cleared before and after the test."""
    ozmap_sim.clear_faults()
    yield ozmap_sim
    ozmap_sim.clear_faults()


@pytest.fixture(autouse=True)
def _capture_everything(caplog):
    caplog.set_level(logging.DEBUG)


def _assert_no_secret(text: str, sim) -> None:
    assert sim.api_key not in text


def _all_ids(client: OZmapClient, limit: int = 10) -> list[str]:
    return [r["id"] for page in client.iter_pages("boxes", limit=limit) for r in page]


def test_recovers_from_5xx(faulty, caplog) -> None:
    with make_client(faulty) as clean:
        expected = _all_ids(clean, limit=30)
    faulty.set_faults(error_rate=0.4, seed=11)
    with make_client(faulty, max_retries=8) as client:
        assert _all_ids(client, limit=30) == expected
        assert client.stats.retries > 0
        assert set(client.stats.retry_reasons) <= {"500", "502", "503", "504"}
    _assert_no_secret(caplog.text, faulty)


def test_recovers_from_429_honouring_retry_after(faulty, caplog) -> None:
    faulty.set_faults(rate_429=0.4, retry_after=0.5, seed=3)
    with make_client(faulty, max_retries=8, max_retry_after=5.0) as client:
        projects = client.list_projects()
        boxes = _all_ids(client, limit=100)
    assert projects and boxes
    assert set(client.stats.retry_reasons) == {"429"}
    # each retry waited at least the server's Retry-After (no wall clock: the planned delays)
    assert client.stats.delays and min(client.stats.delays) >= 0.5
    _assert_no_secret(caplog.text, faulty)


def test_retry_after_is_capped(faulty) -> None:
    faulty.set_faults(rate_429=1.0, retry_after=3600)
    client = make_client(faulty, max_retries=2, max_retry_after=0.05)
    with client, pytest.raises(OZmapUnavailable) as info:
        client.list_projects()
    assert info.value.status_code == 429
    assert client.stats.retries == 2 and max(client.stats.delays) <= 0.05
    assert "3 attempts" in str(info.value)


def test_recovers_from_read_timeouts(faulty) -> None:
    with make_client(faulty) as clean:
        expected = _all_ids(clean, limit=100)
    # the server holds two requests for 2 s; the client gives up reading after 0.3 s
    faulty.set_faults(script=["timeout", "ok", "timeout"], timeout_s=2.0)
    with make_client(faulty, timeout=httpx.Timeout(0.3, connect=1.0)) as client:
        assert _all_ids(client, limit=100) == expected
    assert client.stats.retry_reasons == {"ReadTimeout": 2}


def test_recovers_from_random_timeouts(faulty) -> None:
    faulty.set_faults(timeout_rate=0.3, timeout_s=2.0, seed=5)
    with make_client(faulty, timeout=httpx.Timeout(0.3, connect=1.0), max_retries=8) as client:
        rows = _all_ids(client, limit=20)
    faulty.clear_faults()
    with make_client(faulty) as clean:
        assert rows == _all_ids(clean, limit=20)
    assert client.stats.retry_reasons["ReadTimeout"] > 0


def test_recovers_from_each_transient_status(faulty) -> None:
    faulty.set_faults(script=["502", "503", "504", "500", "429"], retry_after=0)
    with make_client(faulty, max_retries=5) as client:
        assert client.list_projects()
    assert client.stats.retry_reasons == {"502": 1, "503": 1, "504": 1, "500": 1, "429": 1}


def test_recovers_from_dropped_connections(faulty) -> None:
    with make_client(faulty) as clean:
        expected = _all_ids(clean, limit=20)
    faulty.set_faults(script=["drop", "ok", "drop"])
    with make_client(faulty) as client:
        assert _all_ids(client, limit=20) == expected
    assert client.stats.retries == 2
    assert set(client.stats.retry_reasons) <= {"RemoteProtocolError", "ReadError"}
    faulty.set_faults(drop_rate=0.3, seed=7)
    with make_client(faulty, max_retries=8) as client:
        assert _all_ids(client, limit=20) == expected
    assert client.stats.retries > 0


def test_latency_only_slows_down(faulty) -> None:
    faulty.set_faults(latency_ms=30)
    with make_client(faulty) as client:
        assert client.list_projects()
    assert client.stats.retries == 0


def test_permanent_5xx_reported_clearly_without_the_key(faulty, caplog) -> None:
    faulty.set_faults(error_rate=1.0)
    client = make_client(faulty, max_retries=3)
    with client, pytest.raises(OZmapUnavailable) as info:
        client.get_box("0" * 24)
    exc = info.value
    assert exc.transient and exc.status_code and exc.status_code >= 500
    assert "unavailable" in str(exc) and "4 attempts" in str(exc)
    assert client.stats.requests == 4
    _assert_no_secret(str(exc), faulty)
    _assert_no_secret(repr(exc), faulty)
    _assert_no_secret(caplog.text, faulty)


def test_unreachable_server_is_unavailable_not_ambiguous(faulty) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    client = OZmapClient(
        f"http://127.0.0.1:{port}/api/v2", faulty.api_key, max_retries=2, backoff=0.01
    )
    with client, pytest.raises(OZmapUnavailable) as info:
        client.list_projects()
    assert info.value.ambiguous is False
    assert "could not be reached" in str(info.value)
    assert faulty.api_key not in str(info.value)


# --- idempotency of reserve under lost responses ---------------------------------------------


class LosingTransport(httpx.HTTPTransport):
    """Real HTTP; the answer to the next ``lose`` POSTs is read and then thrown away."""

    def __init__(self, lose: int = 1) -> None:
        super().__init__()
        self.lose = lose
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST" and self.lose > 0:
            response.read()  # OZmap has processed it ...
            response.close()
            self.lose -= 1
            self.lost += 1
            raise httpx.ReadTimeout("response lost", request=request)  # ... we never hear back
        return response


def test_reserve_after_a_lost_response_leaves_one_client(faulty, new_code) -> None:
    transport = LosingTransport(lose=1)
    with make_client(faulty, transport=transport) as client:
        [fp] = find_free_ports(client)
        code = new_code("LOST")
        r = _reserve(client, code, fp)
    assert transport.lost == 1
    assert r.created is False  # found, not confirmed by its own POST
    assert (r.splitter_id, r.port) == (fp.splitter_id, fp.port)
    with make_client(faulty) as clean:
        assert len(_clients_with_code(clean, code)) == 1
        assert len(clean.find_properties_by_client_code(code)) == 1


def test_reserve_under_injected_faults_leaves_one_client_per_code(faulty, new_code) -> None:
    with make_client(faulty) as clean:
        ports = find_free_ports(clean, 4)
    codes = [new_code("FLT") for _ in ports]
    faulty.set_faults(error_rate=0.3, drop_rate=0.2, seed=21)
    with make_client(faulty, max_retries=10) as client:
        for code, fp in zip(codes, ports, strict=True):
            _reserve(client, code, fp)
            _reserve(client, code, fp)  # the caller's own retry
    faulty.clear_faults()
    with make_client(faulty) as clean:
        for code in codes:
            assert len(_clients_with_code(clean, code)) == 1, code


def test_concurrent_reserves_of_one_code_leave_one_client(faulty, new_code) -> None:
    with make_client(faulty) as clean:
        a, b = find_free_ports(clean, 2)
    code = new_code("RACE")
    results: list[object] = []

    def attempt(fp) -> None:
        with make_client(faulty) as client:
            try:
                results.append(_reserve(client, code, fp))
            except Exception as exc:  # collected for the assertions below
                results.append(exc)

    threads = [threading.Thread(target=attempt, args=(fp,)) for fp in (a, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with make_client(faulty) as clean:
        assert len(_clients_with_code(clean, code)) == 1
        assert len(clean.find_properties_by_client_code(code)) == 1
    assert any(not isinstance(r, Exception) for r in results)


def test_filter_param_survives_retries(faulty) -> None:
    with make_client(faulty) as clean:
        project = clean.list_projects()[0]
    faulty.set_faults(error_rate=0.5, seed=2)
    with make_client(faulty, max_retries=10) as client:
        rows = [r for p in client.iter_pages("boxes", filter=F("project") == project.id, limit=5)
                for r in p]  # fmt: skip
    assert rows and all(r["project"] == project.id for r in rows)


def test_reserve_when_the_simulator_applies_then_fails(faulty, new_code) -> None:
    """OZmap applies the POST and then answers 5xx / drops the connection."""
    with make_client(faulty) as clean:
        ports = find_free_ports(clean, 2)
    for mode, fp in zip(("lost", "lost-drop"), ports, strict=True):
        code = new_code("SIMLOST")
        faulty.set_faults(script=[mode], methods=["POST"])
        with make_client(faulty) as client:
            r = _reserve(client, code, fp)
        assert faulty.fault_counters()[mode] == 1
        assert not r.created and (r.splitter_id, r.port) == (fp.splitter_id, fp.port)
        faulty.clear_faults()
        with make_client(faulty) as clean:
            assert len(_clients_with_code(clean, code)) == 1, mode


def test_cancel_when_the_delete_answer_is_lost(faulty, new_code) -> None:
    with make_client(faulty) as client:
        [fp] = find_free_ports(client)
        code = new_code("DEL")
        _reserve(client, code, fp)
        faulty.set_faults(script=["lost"], methods=["DELETE"])
        assert client.cancel(code) is True  # the retry's 404 means our first DELETE worked
        assert client.find_properties_by_client_code(code) == []
