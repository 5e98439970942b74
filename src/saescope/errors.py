"""User-facing errors.

A `SaescopeError` is a problem with the user's input or environment (a wrong path, an unknown
hookpoint, mismatched dimensions, a corrupt shard, a full disk). The CLI prints its message as one
line and exits non-zero, without a traceback. Library code raises it; it never prints.
This module knows nothing about models, stores or SAEs.
"""

from __future__ import annotations


class SaescopeError(Exception):
    """A problem the user can fix, reported as one line."""


class ConfigError(SaescopeError):
    """A setting that is out of range or contradicts another."""


class StoreError(SaescopeError):
    """An activation store that is missing, corrupt, or made with other settings."""


class CheckpointError(SaescopeError):
    """A training checkpoint that is missing, corrupt, foreign, or made with other settings."""


def require(condition: bool, message: str, error: type[SaescopeError] = ConfigError) -> None:
    """Raise `error(message)` unless `condition` holds (a readable guard for `__post_init__`)."""
    if not condition:
        raise error(message)
