"""oid_spec_list edges: the spec count limit, nested filter parentheses, a substring filter on OIDs."""

from __future__ import annotations

import pytest

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes.snmp.oidspec import MAX_SPECS, ChildFilter, parse_oid_spec_list
from midprobe.probes.snmp.values import SnmpType, SnmpValue


def test_at_most_max_specs_lines() -> None:
    assert len(parse_oid_spec_list("walk 1.3.6.1.2.1.1\n" * MAX_SPECS)) == MAX_SPECS
    with pytest.raises(ProbeParameterError, match=f"line {MAX_SPECS + 1}: more than {MAX_SPECS} specs"):
        parse_oid_spec_list("walk 1.3.6.1.2.1.1\n" * (MAX_SPECS + 1))


def test_nested_parentheses_in_a_filter_are_refused() -> None:
    with pytest.raises(ProbeParameterError, match="line 1: nested parentheses in a child filter"):
        parse_oid_spec_list("table ifTable ifDescr((=eth0))")


def test_a_substring_filter_on_an_oid_matches_the_dotted_or_the_plain_form() -> None:
    enterprise = SnmpValue(SnmpType.OBJECT_ID, (1, 3, 6, 1, 4, 1, 9))
    assert ChildFilter("#", ".1.3.6").matches(enterprise)  # only the dotted form holds ".1.3"
    assert ChildFilter("#", "1.3.6.1.4.1.9").matches(enterprise)
    assert not ChildFilter("#", ".1.4.1.8").matches(enterprise)
