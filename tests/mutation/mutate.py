"""Hand-written mutations of the pure modules, each run against that module's unit tests.

``make mutate`` copies the tree to a temporary directory (the working tree is never
touched), applies one mutation at a time there, runs only the tests that cover the module
(``-x -q``) and prints how many mutants the tests killed, per module and overall. A mutant
that survives is a change of behaviour no test notices.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("capabilities", "probes", "runner")


@dataclass(frozen=True)
class Mutation:
    old: str
    new: str


@dataclass(frozen=True)
class Module:
    path: str
    tests: tuple[str, ...]
    mutations: tuple[Mutation, ...]


def _m(old: str, new: str) -> Mutation:
    return Mutation(old, new)


MODULES: tuple[Module, ...] = (
    Module(
        "probes/snmp/codec.py",
        ("tests/unit/probes/snmp/test_codec.py", "tests/unit/probes/snmp/test_codec_differential.py"),
        (
            _m("if count == 0 or count > 4 or", "if count > 4 or"),
            _m(
                'length = int.from_bytes(data[pos : pos + count], "big")',
                'length = int.from_bytes(data[pos : pos + count], "little")',
            ),
            _m('raise SnmpDecodeError(f"empty INTEGER for {what}")', "pass"),
            _m('raise SnmpDecodeError("empty INTEGER value")', "pass"),
            _m("if value_end != vb_end:", "if value_end > vb_end:"),
            _m(
                'if body[-1] & 0x80:\n        raise SnmpDecodeError("OBJECT IDENTIFIER ends inside an arc")',
                "if False:\n        pass",
            ),
            _m(
                'if body[-1] & 0x80:\n                raise SnmpDecodeError("OBJECT IDENTIFIER ends inside an arc")',
                "if False:\n                pass",
            ),
            _m("(lead // 40, lead % 40) if lead < 80", "(lead // 40, lead % 40) if lead < 8000"),
            _m("if octet < 80 else (2, octet - 80)", "if octet < 40 else (2, octet - 80)"),
            _m("magnitude = value if value >= 0 else ~value", "magnitude = value"),
            _m("if version not in (VERSION_1, VERSION_2C):", "if version < 0:"),
            _m("if pdu_type not in _PDU_TAGS:", "if pdu_type & 0xE0 != 0xA0:"),
            _m('raise SnmpDecodeError("empty unsigned value")', "pass"),
            _m("if stop > end:", "if stop > end + 1:"),
            _m("if oid_end > vb_end or not length:", "if oid_end > vb_end:"),
            _m("if vb_end > list_end:", "if vb_end > list_end + 1:"),
            _m("if n < 0x80:\n        return bytes((n,))", "if n < 0x100:\n        return bytes((n,))"),
            _m("chunk.append(0x80 | (arc & 0x7F))", "chunk.append(arc & 0x7F)"),
            _m(
                'from_bytes(data[value_start:value_end], "big")))',
                'from_bytes(data[value_start:value_end], "big", signed=True)))',
            ),
        ),
    ),
    Module(
        "capabilities/selection.py",
        ("tests/unit/capabilities/test_selection.py", "tests/unit/capabilities/test_selection_properties.py"),
        (
            _m("if not mid.validated:\n            return None", "if False:\n            return None"),
            _m("elif mid.status in _UPGRADING_OR_PAUSED:", "elif mid.status is not MidStatus.DOWN:"),
            _m("and level > winning_level:", "and level >= winning_level:"),
            _m("if count > 1)", "if count > 2)"),
            _m("if mid is None or levels[name] is not level:", "if mid is None or levels[name] is None:"),
            _m("is MidStatus.DEGRADED and self._takes_degraded(request)", "is MidStatus.DEGRADED"),
            _m(
                "if level <= self._policy.lowest_level else None",
                "if level <= self._policy.lowest_level + 1 else None",
            ),
            _m(
                "for name in self._policy.default_candidates(request.application):",
                "for name in reversed(self._policy.default_candidates(request.application)):",
            ),
            _m("if verdict.step is Step.WILDCARD:", "if verdict.step is not Step.WILDCARD:"),
            _m("if found != 1 else", "if found != 2 else"),
        ),
    ),
    Module(
        "probes/nmap/parse.py",
        (
            "tests/unit/probes/nmap/test_host.py",
            "tests/replay/test_nmap_parse.py",
            "tests/replay/test_nmap_malformed.py",
        ),
        (
            _m(
                "max(self.os_matches, key=lambda match: match.accuracy",
                "min(self.os_matches, key=lambda match: match.accuracy",
            ),
            _m('return self.status == "up"', 'return self.status != "down"'),
            _m('if address.addrtype in ("ipv4", "ipv6"):', 'if address.addrtype in ("ipv4",):'),
            _m('timed_out=element.get("timedout") == "true",', "timed_out=False,"),
            _m("if len(data) > MAX_XML_BYTES:", "if len(data) > 10 * MAX_XML_BYTES:"),
            _m('if root.tag != "nmaprun":', "if False:"),
            _m(
                'return self.method == "probed" and self.confidence > GUESS_CONFIDENCE',
                'return self.method == "probed"',
            ),
        ),
    ),
    Module(
        "capabilities/ipranges.py",
        ("tests/unit/capabilities/test_ipranges.py",),
        (
            _m(
                "and address.ipv4_mapped is not None:\n        return address.ipv4_mapped",
                "and False:\n        return address.ipv4_mapped",
            ),
            _m("ipaddress.ip_network(spec, strict=True)", "ipaddress.ip_network(spec, strict=False)"),
            _m("if first.version != last.version:", "if False:"),
            _m("if int(first) > int(last):", "if int(first) > int(last) + 1:"),
            _m("self.first <= int(address) <= self.last", "self.first <= int(address) < self.last"),
            _m("return address.version == self.version and", "return"),
            _m("if spec.upper() == ALL_ADDRESSES:", "if spec == ALL_ADDRESSES:"),
        ),
    ),
    Module(
        "probes/ports.py",
        ("tests/unit/probes/test_ports.py",),
        (
            _m("if not 1 <= value <= MAX_PORT:", "if not 0 <= value <= MAX_PORT:"),
            _m("if low_text else 1", "if low_text else 0"),
            _m("if low > high:", "if low > high + 1:"),
            _m("target.update(range(low, high + 1))", "target.update(range(low, high))"),
            _m("ports[index + 1] == end + 1:", "ports[index + 1] == end + 2:"),
            _m('if prefix == "T":', 'if prefix == "U":'),
            _m('raise PortSpecError(f"no ports given in {spec!r}")', "pass"),
        ),
    ),
    Module(
        "probes/targets.py",
        ("tests/unit/probes/test_targets.py",),
        (
            _m("if low > 255 or high > 255:", "if low > 256 or high > 256:"),
            _m("if low > high:", "if low > high + 1:"),
            _m("if prefix > address.max_prefixlen:", "if prefix > address.max_prefixlen + 1:"),
            _m("if not candidate or len(candidate) > 253:", "if not candidate:"),
            _m("if merged and lo <= merged[-1][1] + 1:", "if merged and lo <= merged[-1][1]:"),
            _m("if int(first) > int(last):", "if False:"),
        ),
    ),
    Module(
        "probes/snmp/oidspec.py",
        ("tests/unit/probes/snmp/test_oidspec.py", "tests/unit/probes/snmp/test_oidspec_limits.py"),
        (
            _m("return self.value not in candidates", "return self.value in candidates"),
            _m(
                "return any(self.value in candidate for candidate in candidates)",
                "return all(self.value in candidate for candidate in candidates)",
            ),
            _m("if len(specs) > MAX_SPECS:", "if len(specs) > MAX_SPECS + 1:"),
            _m("if len(parts) != 2:", "if len(parts) < 2:"),
            _m("if len({child.oid for child in children}) != len(children):", "if False:"),
            _m("if depth > 1:", "if depth > 2:"),
            _m("if any(not child for child in children):", "if False:"),
        ),
    ),
    Module(
        "runner/ecc/payload.py",
        ("tests/unit/runner/ecc/test_payload.py", "tests/unit/runner/ecc/test_payload_limits.py"),
        (
            _m("if len(text) > max_bytes or payload_size(text) > max_bytes:", "if len(text) > max_bytes:"),
            _m("if not text.strip():", "if not text:"),
            _m("if not parameter.name:", "if False:"),
            _m("if parameter.name in seen:", "if False:"),
            _m("if name in seen:", "if False:"),
            _m("if _NOT_XML_CHAR.search(text):", "if False:"),
            _m('if root.tag == "probes":', 'if root.tag == "probe":'),
        ),
    ),
    Module(
        "runner/instance/query.py",
        ("tests/unit/runner/instance/test_query.py",),
        (
            _m('    "<=",\n    ">=",\n    "=",\n    "<",', '    "<",\n    "<=",\n    ">=",\n    "=",'),
            _m('            return actual == ""\n', '            return actual.strip() == ""\n'),
            _m("            return actual in self.values", "            return actual in self.values[:1]"),
            _m("            return actual.startswith(wanted)", "            return wanted in actual"),
            _m("            return actual.endswith(wanted)", "            return wanted in actual"),
            _m('        if actual == "":  # an empty value', "        if False:  # an empty value"),
            _m('int(actual) if self.kind == "integer" else actual', "actual"),
            _m("            return left <= right", "            return left < right"),
            _m("        return left >= right", "        return left > right"),
            _m("            all(any(condition.matches(row)", "            any(any(condition.matches(row)"),
            _m("for ordering in reversed(self.ordering):", "for ordering in self.ordering:"),
            _m('            return (0, 0, "")', '            return (2, 0, "")'),
            _m('            if text.startswith("^^", index):', "            if False:"),
            _m(
                '    if field not in fields:\n        raise EncodedQueryError(f"no field',
                '    if False:\n        raise EncodedQueryError(f"no field',
            ),
            _m(
                '        if term == "EQ":\n            continue', '        if term == "EQ":\n            pass'
            ),
            _m('        if term.startswith("ORDERBYDESC"):', '        if term.startswith("ORDERBYDESCX"):'),
            _m(
                "            group[-1] = (*group[-1], _condition(term, term[2:], fields))",
                "            group.append((_condition(term, term[2:], fields),))",
            ),
            _m("            groups.append(tuple(group))\n            group = [", "            group = ["),
            _m('    if operator in _TEXT_ONLY and kind != "string":', "    if False:"),
            _m(
                '        if len(alternatives) == 1 and alternatives[0].operator == "=":',
                '        if alternatives[0].operator == "=":',
            ),
            _m("if len(terms) > MAX_TERMS:", "if len(terms) > MAX_TERMS + 1:"),
        ),
    ),
    Module(
        "probes/snmp/network_tables.py",
        ("tests/unit/probes/snmp/test_network_tables.py",),
        (
            _m("and kind != 2 and (if_index, address) not in found", "and (if_index, address) not in found"),
            _m(
                "return mac if mac not in _NO_MAC else None\n\n\ndef _octets_mac",
                "return mac\n\n\ndef _octets_mac",
            ),
            _m("or not port or status in (2, 4):", "or not port or status == 2:"),
            _m("ports.get(port), vlan,", "port, vlan,"),
            _m(
                "if found:\n        return tuple(found)\n    for instance, row in sorted(table_rows(walked, FDB_COLUMNS)",
                "for instance, row in sorted(table_rows(walked, FDB_COLUMNS)",
            ),
            _m('.strip("\\x00 \\t\\r\\n")', ".strip()"),
            _m(
                "if address is not None and not ipaddress.ip_address(address).is_unspecified",
                "if address is not None",
            ),
            _m("hop, tail = _inet(rest[2 + policy_length :])", "hop, tail = _inet(rest[2:])"),
            _m("if network is None or kind == 2:", "if network is None:"),
            _m('if _number(row.get("tcpConnectionState")) == _ESTABLISHED:', "if True:"),
            _m("if instance[:2] == (0, 0) else _inet(instance)", "if False else _inet(instance)"),
        ),
    ),
    Module(
        "probes/ssh/host_tables.py",
        ("tests/unit/probes/ssh/test_host_tables.py", "tests/unit/probes/ssh/test_explore.py"),
        (
            _m('route.get("type", "unicast") != "unicast"', "False"),
            _m('return "::/0" if ipv6 else "0.0.0.0/0"', 'return "0.0.0.0/0"'),
            _m('if host in ("*", "0.0.0.0", "::"):', 'if host in ("*",):'),
            _m("return str(mapped or parsed), int(port)", "return str(parsed), int(port)"),
            _m("if key not in found:  # IPv4 and IPv6 wildcards are one service", "if True:"),
            _m("or not isinstance(size, int) or size <= 0:", "or not isinstance(size, int):"),
            _m("replace('\\\\\"', '\"')", "replace('x', 'x')"),
        ),
    ),
    Module(
        "runner/discovery/relations.py",
        ("tests/unit/runner/discovery/test_relations.py",),
        (
            _m("per_port[port] <= EDGE_PORT_MACS", "per_port[port] < EDGE_PORT_MACS + 2"),
            _m('serving = row.get("local_port") in listening', "serving = False"),
            _m("if (serving, remote) in lookups:\n            continue", "if False:\n            continue"),
            _m(
                "return not (address.is_loopback or address.is_unspecified)",
                "return not address.is_unspecified",
            ),
            _m("return child if self.found_is_parent else parent", "return parent"),
        ),
    ),
)


def _copy_tree(into: Path) -> None:
    source = into / "src" / "midprobe"
    source.mkdir(parents=True)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", into / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "fixtures"):
        if (ROOT / name).is_dir():
            os.symlink(ROOT / name, into / name)  # read-only data, never mutated
        elif (ROOT / name).exists():
            shutil.copy(ROOT / name, into / name)


def _killed(tree: Path, module: Module) -> bool:
    environment = {
        **os.environ,
        "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "--hypothesis-profile=mutation",
        *module.tests,
    ]
    try:
        run = subprocess.run(
            command, cwd=tree, env=environment, capture_output=True, timeout=600, check=False
        )
    except subprocess.TimeoutExpired:
        return True  # a mutant that hangs the tests is caught by the per-test timeout in CI
    return run.returncode != 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--module", help="only the module with this path (for example probes/snmp/codec.py)")
    arguments = parser.parse_args(argv)
    total = killed_total = 0
    with tempfile.TemporaryDirectory(prefix="midprobe-mutate-") as temporary:
        tree = Path(temporary)
        _copy_tree(tree)
        for module in MODULES:
            if arguments.module and module.path != arguments.module:
                continue
            target = tree / "src" / "midprobe" / module.path
            original = target.read_text()
            if _killed(tree, module):  # a mutant only counts as killed if the tests pass without it
                print(f"  {module.path}: its tests fail unmutated: {' '.join(module.tests)}", file=sys.stderr)
                return 2
            killed = 0
            for mutation in module.mutations:
                if original.count(mutation.old) != 1:
                    print(f"  {module.path}: mutation does not apply once: {mutation.old!r}", file=sys.stderr)
                    return 2
                target.write_text(original.replace(mutation.old, mutation.new))
                try:
                    dead = _killed(tree, module)
                finally:
                    target.write_text(original)
                killed += dead
                if not dead:
                    print(f"  survived in {module.path}: {mutation.old!r} -> {mutation.new!r}")
            count = len(module.mutations)
            total += count
            killed_total += killed
            if count:
                print(f"{module.path}: {killed}/{count} killed ({100 * killed // count} %)")
    if total:
        print(f"overall: {killed_total}/{total} killed ({100 * killed_total // total} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
