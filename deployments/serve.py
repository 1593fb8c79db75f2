"""Serve every deployment of the registry in one process (embedded default: no work pool).

`erp-ozmap serve` (and the demo) registers the deployments with their schedules and the sync
trigger, prepares the server (limits and automations, see deployments/bootstrap.py) and then
runs scheduled and triggered flow runs until stopped. Schedules are NOT paused on shutdown, so
a restart (or the production workers) carry on where this process stopped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from deployments.registry import DEPLOYMENTS, LOGGING_CONFIG, RUN_ENV, DeploymentSpec

Echo = Callable[[str], None]


def selected(names: list[str] | None = None) -> list[DeploymentSpec]:
    if not names:
        return list(DEPLOYMENTS)
    from deployments.registry import by_name

    return [by_name(n) for n in names]


def serve_all(
    *,
    names: list[str] | None = None,
    schedules: bool = True,
    prepare: bool = True,
    limit: int | None = None,
    echo: Echo = print,
) -> None:
    """Register, prepare and serve; blocks until SIGINT/SIGTERM."""
    for key, value in RUN_ENV.items():  # heartbeats for the zombie sweep
        os.environ.setdefault(key, value)
    # Operator times in the console logs of this process's flow runs (deployments/logging.yml).
    os.environ.setdefault("PREFECT_LOGGING_CONFIG_PATH", str(LOGGING_CONFIG))
    from prefect import serve
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        from deployments.bootstrap import BootstrapError

        raise BootstrapError(
            "PREFECT_API_URL is not set: serve needs a Prefect server, e.g. start one with "
            "`uv run prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api "
            "(or run `uv run erp-ozmap demo`, which starts everything)"
        )
    specs = selected(names)
    deployments = [s.to_runner_deployment(schedules=schedules) for s in specs]
    if prepare:
        from deployments.bootstrap import bootstrap

        for d in deployments:
            d.apply()  # registered before the automations that refer to them
        bootstrap(deploy=False, echo=echo)
    echo(f"serving {len(deployments)} deployments: " + ", ".join(s.name for s in specs))
    serve(*deployments, limit=limit, pause_on_shutdown=False, print_starting_message=False)


def main(argv: list[str] | None = None) -> None:
    """`python -m deployments.serve [--no-schedules] [NAME ...]` (used by the demo)."""
    args = list(sys.argv[1:] if argv is None else argv)
    schedules = "--no-schedules" not in args
    names = [a for a in args if not a.startswith("--")]
    serve_all(names=names or None, schedules=schedules, echo=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
