"""Errors that are the user's to fix. The entry points print them as one line and exit non-zero."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a config value, a missing or damaged dataset, an unusable path."""


class ConfigError(UserError, ValueError):
    """A config value or combination that is not allowed."""


class DataError(UserError):
    """A dataset that is missing, incomplete or damaged."""
