"""The error gradlab raises for a bad sweep specification (a ``ValueError``)."""

__all__ = ["ConfigError", "fail"]


class ConfigError(ValueError):
    """An invalid sweep specification; the message starts with the offending field."""


def fail(field: str, message: str) -> ConfigError:
    """The :class:`ConfigError` for ``field``: ``"field: message"``."""
    return ConfigError(f"{field}: {message}")
