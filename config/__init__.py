"""Configuration: `get_settings()` returns the process-wide `Settings`."""

from config.settings import Settings, get_settings, reset_settings_cache

__all__ = ["Settings", "get_settings", "reset_settings_cache"]
