"""The console forward's target check: it relays only to a lab address or the namespace's loopback."""

from __future__ import annotations

import pytest

from midprobe.capabilities.errors import LabError
from midprobe.runner.lab.forward import check_target


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("198.18.0.1:8443", ("198.18.0.1", 8443)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
        ("127.0.0.1:5432", ("127.0.0.1", 5432)),
    ],
)
def test_a_lab_address_is_a_target(text: str, target: tuple[str, int]) -> None:
    assert check_target(text) == target


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("10.0.0.1:443", "not a lab address"),
        ("192.168.1.1:8443", "not a lab address"),
        ("[2001:4860::1]:443", "not a lab address"),
        ("instance.lab:8443", "not ADDRESS:PORT"),
        ("198.18.0.1", "not ADDRESS:PORT"),
        ("198.18.0.1:0", "has no port"),
        ("198.18.0.1:70000", "has no port"),
    ],
)
def test_anything_else_is_refused_with_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(LabError, match=says):
        check_target(text)
