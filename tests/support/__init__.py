"""Helpers shared by tests of many packages: factories, scenarios, waits."""
