"""Run the simulator: in a background thread for tests (:func:`run_simulator`) or in the
foreground for the CLI (:func:`serve_forever`)."""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from simulator.app import API, FaultMiddleware, Simulator
from simulator.faults import FaultConfig
from simulator.store import Store

# A served page is built as ~100k short-lived objects; with CPython's default thresholds a
# full collection then walks the whole store every few pages (measured: ~30% of the
# simulator's CPU in a network refresh). A process that only serves raises them.
SERVING_GC_THRESHOLDS = (50_000, 20, 100)


class SimulatorError(RuntimeError):
    """The simulator could not start or stop."""


class _Protocol(H11Protocol):
    """h11 protocol that registers its transport so a fault can drop the connection."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._sim_key = (self.server, self.client)
        FaultMiddleware.transports[self._sim_key] = transport

    def connection_lost(self, exc: Exception | None) -> None:
        FaultMiddleware.transports.pop(getattr(self, "_sim_key", None), None)  # type: ignore[arg-type]
        super().connection_lost(exc)


@dataclass
class RunningSimulator:
    """Handle yielded by :func:`run_simulator`."""

    url: str  # http://127.0.0.1:PORT/api/v2
    api_key: str
    state: Store
    sim: Simulator
    host: str
    port: int

    @property
    def base_url(self) -> str:
        """Server root without /api/v2 (admin routes live at <base_url>/__admin/...)."""
        return self.url[: -len(API)]

    def set_faults(self, **settings: Any) -> FaultConfig:
        """Replace the fault settings (see :class:`simulator.faults.FaultConfig`)."""
        return self.sim.faults.set(**settings)

    def clear_faults(self) -> None:
        self.sim.faults.clear()

    def fault_counters(self) -> dict[str, int]:
        return self.sim.faults.snapshot()["counters"]

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.api_key}


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP; without it Nagle + delayed ACK add ~40 ms to every response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SimulatorError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port or 0"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_server(
    sim: Simulator, *, log_level: str = "warning", access_log: bool = False
) -> uvicorn.Server:
    config = uvicorn.Config(
        sim.build(),
        http=_Protocol,
        lifespan="off",
        log_level=log_level,
        access_log=access_log,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=3,
    )
    return uvicorn.Server(config)


@contextmanager
def run_simulator(
    *,
    boxes: int = 200,
    seed: int = 1,
    api_key: str = "sim-key",
    host: str = "127.0.0.1",
    port: int = 0,
    store: str | Path | None = None,
    state: Store | None = None,
    log_level: str = "warning",
) -> Iterator[RunningSimulator]:
    """Start the simulator in a background thread; stop it (and close the store) on exit.

    ``port=0`` picks a free port. ``store`` persists the changes to a SQLite file so that a
    later run with the same path starts from them. ``state`` reuses an existing Store.
    """
    own_state = state is None
    st = state if state is not None else Store.open(boxes=boxes, seed=seed, store_path=store)
    sim = Simulator(st, api_key)
    sock = _bind(host, port)
    real_port = sock.getsockname()[1]
    server = make_server(sim, log_level=log_level)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the caller below
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"ozmap-sim:{real_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if errors or not thread.is_alive():
            sock.close()
            raise SimulatorError(f"simulator failed to start: {errors[:1]!r}")
        if time.monotonic() > deadline:
            raise SimulatorError("simulator did not start within 20 s")
        time.sleep(0.01)
    url_host = f"[{host}]" if ":" in host else host
    handle = RunningSimulator(
        url=f"http://{url_host}:{real_port}{API}",
        api_key=api_key,
        state=st,
        sim=sim,
        host=host,
        port=real_port,
    )
    try:
        yield handle
    finally:
        sim.stopping.set()
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        if own_state:
            st.close()
        if thread.is_alive():
            raise SimulatorError("simulator thread did not stop within 15 s")


def serve_forever(
    *,
    boxes: int,
    seed: int,
    api_key: str,
    host: str,
    port: int,
    store: str | Path | None = None,
    log_level: str = "info",
    echo: Any = print,
) -> None:
    """Run in the foreground until Ctrl-C (uvicorn handles SIGINT/SIGTERM)."""
    t0 = time.perf_counter()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)  # this process only serves
    st = Store.open(boxes=boxes, seed=seed, store_path=store)
    sim = Simulator(st, api_key)
    sock = _bind(host, port)
    real_port = sock.getsockname()[1]
    counts = st.counts()
    url_host = f"[{host}]" if ":" in host else host
    echo(
        f"OZmap simulator: {counts['boxes']} boxes, {counts['splitters']} splitters, "
        f"{counts['properties']} properties (seed {st.net.seed}) ready in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    echo(f"  URL:      http://{url_host}:{real_port}{API}")
    if api_key == "sim-key":
        echo("  API key:  sim-key (the default; choose one with --api-key)")
    else:
        echo("  API key:  the one given with --api-key, sent as 'Authorization: <key>'")
    echo(f"  admin:    http://{url_host}:{real_port}/__admin/state  /__admin/faults")
    if store:
        echo(f"  store:    {store}")
    echo("Press Ctrl-C to stop.")
    server = make_server(sim, log_level=log_level)
    try:
        server.run(sockets=[sock])
    finally:
        sim.stopping.set()
        sock.close()
        st.close()
        echo("OZmap simulator stopped.")


def wait_ready(url: str, api_key: str, timeout: float = 10.0) -> None:
    """Poll GET /authenticated until the server answers (for externally started servers)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = httpx.get(f"{url}/authenticated", headers={"Authorization": api_key}, timeout=2)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SimulatorError(f"simulator at {url} not ready after {timeout} s")
        time.sleep(0.05)
