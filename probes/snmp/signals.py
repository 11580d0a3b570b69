"""Internal signals from a session to the client's retry loop; they never leave the client."""

from __future__ import annotations


class NoResponse(Exception):
    """The backend gave up waiting for this attempt (pysnmp's own timer fired)."""


class TooBigLocally(Exception):
    """The backend refused to build or accept a message that large: ask for less."""
