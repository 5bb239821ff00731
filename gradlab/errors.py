"""The error gradlab raises for a bad sweep specification (a ``ValueError``)."""

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """An invalid sweep specification; the message starts with the offending field."""
