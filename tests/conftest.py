"""Shared fixtures live in tests/fixtures/*, one module per real part (database, OZmap, Prefect)."""

pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.ozmap",
    "tests.fixtures.prefect",
    "tests.fixtures.service",
    "tests.fixtures.browser",
]
