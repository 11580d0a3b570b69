"""Capability value tests: matchers that replace string equality (ServiceNow's ``ecc_agent_capability_value_test``).

A matcher is ``f(mid_value, requested_value) -> bool``; both values reach it lower-cased, and a blank
MID value matches every request before the matcher is consulted. Registries are per instance.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from midprobe.capabilities.errors import ConfigError
from midprobe.capabilities.model import suggest

ValueMatcher = Callable[[str, str], bool]

#: The registered name of the built-in matcher bound to the ``Resolve DNS`` capability.
RESOLVE_DNS = "resolve_dns"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _dns_name(text: str) -> str:
    name = text.strip().lower()
    return name[:-1] if name.endswith(".") else name


def resolve_dns(mid_value: str, requested_value: str) -> bool:
    """Does the device name ``requested_value`` fall under the domain ``mid_value``?

    The domain gets a leading dot unless it has one and the name must end with it, so
    ``service-now.com`` finds ``lnxlab01.sandiego.service-now.com`` but not ``service-now.com.evil``
    nor ``xservice-now.com``. A blank domain matches every name. DNS names compare
    case-insensitively and a trailing root dot on either side is ignored.
    """
    domain = _dns_name(mid_value)
    if not domain:
        return True
    suffix = domain if domain.startswith(".") else "." + domain
    return _dns_name(requested_value).endswith(suffix)


class ValueTestRegistry:
    """Named value matchers. Each instance owns its own table; ``resolve_dns`` is there unless told not."""

    def __init__(self, *, builtins: bool = True) -> None:
        self._matchers: dict[str, ValueMatcher] = {}
        if builtins:
            self.register(RESOLVE_DNS, resolve_dns)

    def register(self, name: str, matcher: ValueMatcher, *, replace: bool = False) -> None:
        """Bind ``name`` (as written in ``value_test = "..."``) to ``matcher``; a duplicate is an error."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"value test name {name!r} must be an identifier such as 'resolve_dns'")
        if not callable(matcher):
            raise ConfigError(f"value test {name!r} must be callable as f(mid_value, requested_value)")
        if name in self._matchers and not replace:
            raise ConfigError(f"value test {name!r} is already registered (pass replace=True to rebind it)")
        self._matchers[name] = matcher

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._matchers))

    def __contains__(self, name: object) -> bool:
        return name in self._matchers

    def get(self, name: str) -> ValueMatcher:
        try:
            return self._matchers[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise ConfigError(
                f"no value test named {name!r} is registered{suggest(name, self._matchers)} (registered: {known})"
            ) from None

    def matches(self, name: str, mid_value: str, requested_value: str) -> bool:
        """Apply the ServiceNow rules around the matcher: blank MID value matches all, values lower-cased."""
        if mid_value.strip() == "":
            return True
        matcher = self.get(name)
        try:
            verdict = matcher(mid_value.lower(), requested_value.lower())
        except Exception as error:  # a user's matcher: report it as bad configuration, one line
            raise ConfigError(
                f"value test {name!r} failed on ({mid_value!r}, {requested_value!r}): "
                f"{type(error).__name__}: {error}"
            ) from error
        if not isinstance(verdict, bool):
            raise ConfigError(f"value test {name!r} returned {verdict!r}, expected True or False")
        return verdict


__all__ = ["RESOLVE_DNS", "ValueMatcher", "ValueTestRegistry", "resolve_dns"]
