"""The console's sessions (bounded, idle expiry, CSRF tokens) and its form reader, without a server."""

from __future__ import annotations

import pytest

from midprobe.runner.instance.auth import User
from midprobe.runner.instance.console.forms import MAX_FIELDS, FormError, parse_form
from midprobe.runner.instance.console.sessions import SessionStore

OPERATOR = User("operator", ("admin",))


def test_a_flood_of_anonymous_sessions_never_ends_a_logged_in_one() -> None:
    store = SessionStore(capacity=3)
    operator = store.start(OPERATOR)
    first = store.start()
    for _ in range(10):
        store.start()
    assert store.get(operator.token) is operator
    assert store.get(first.token) is None  # the oldest anonymous one went first


def test_sessions_have_their_own_tokens_and_end_when_idle_or_ended() -> None:
    now = [0.0]
    store = SessionStore(idle_seconds=60, clock=lambda: now[0])
    one, two = store.start(OPERATOR), store.start(OPERATOR)
    assert len({one.token, two.token, one.csrf_token, two.csrf_token}) == 4
    assert one.csrf_matches(one.csrf_token)
    assert not one.csrf_matches(two.csrf_token)
    assert not one.csrf_matches("")
    now[0] = 59
    assert store.get(one.token) is one  # used again: its idle time starts over
    now[0] = 118
    assert store.get(one.token) is one
    assert store.get(two.token) is None
    store.end(one.token)
    assert store.get(one.token) is None
    assert store.get(None) is None


def test_a_form_is_read_field_by_field() -> None:
    assert parse_form(b"name=op&password=a%26b%3Dc&empty=") == {
        "name": "op",
        "password": "a&b=c",
        "empty": "",
    }


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"name=a&name=b", "more than once"),
        (b"name=%ff", "not UTF-8"),
        (b"\xff=1", "not UTF-8"),
        ("&".join(f"f{n}=1" for n in range(MAX_FIELDS + 1)).encode(), "more than 32 fields"),
    ],
)
def test_a_bad_form_is_refused_with_a_400(body: bytes, says: str) -> None:
    with pytest.raises(FormError, match=says) as refused:
        parse_form(body)
    assert refused.value.status == 400
