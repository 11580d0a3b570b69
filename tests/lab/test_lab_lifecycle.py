"""Lab lifecycle: a second lab next to a running one, the CLI across processes, crashes and signals."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError, LabError
from midprobe.runner.lab import Lab, NamespaceThread, list_labs, netns
from midprobe.runner.lab.lab import STATE_ROOT

pytestmark = pytest.mark.lab

HOLDER = """
import sys, time
from pathlib import Path
from midprobe.runner.lab import Lab
lab = Lab.up(Path(sys.argv[1]))
print(lab.prefix, flush=True)
time.sleep(600)
"""


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-c", "from midprobe.runner.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"midprobe {' '.join(args)} failed ({done.returncode}): {done.stderr}{done.stdout}"
        )
    return done


def _fetch_page(thread: NamespaceThread, address: str, port: int) -> bytes | None:
    async def fetch() -> bytes | None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), 3)
        except OSError:
            return None
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return data

    return thread.run_async(fetch)


def _namespaces_of(prefix: str) -> list[str]:
    return [name for name in netns.list_namespaces() if name.startswith(prefix + "-")]


def _assert_gone(prefix: str, pids: list[int]) -> None:
    assert _namespaces_of(prefix) == []
    assert not (STATE_ROOT / prefix).exists()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.05)
    assert [pid for pid in pids if _running(pid)] == []


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_second_lab_runs_next_to_the_first_with_its_own_prefix(
    lab: Lab, lab_thread: NamespaceThread, tiny_profile: Path
) -> None:
    with Lab.up(tiny_profile) as second:
        assert second.prefix != lab.prefix
        assert second.host("solo").address == lab.host("linux1").address == "198.18.0.10"
        with second.namespace_thread() as thread:
            page = _fetch_page(thread, "198.18.0.10", 8080)
        assert page is not None
        assert b"solo" in page
        # Same address, other lab: the session lab's 198.18.0.10 is linux1, with nothing on 8080.
        assert _fetch_page(lab_thread, "198.18.0.10", 8080) is None
        assert b"linux1" in (_fetch_page(lab_thread, "198.18.0.10", 80) or b"")
        pids = [d.pid for d in second.daemons]
    _assert_gone(second.prefix, pids)
    assert b"linux1" in (_fetch_page(lab_thread, "198.18.0.10", 80) or b"")


def _daemon_pids(prefix: str) -> list[int]:
    return [d["pid"] for d in json.loads((STATE_ROOT / prefix / "state.json").read_text())["daemons"]]


@pytest.mark.usefixtures("keeps_a_detached_lab")
def test_cli_up_status_exec_down_across_processes(lab: Lab, tiny_profile: Path) -> None:
    first = json.loads(_cli("lab", "up", "--profile", str(tiny_profile), "--json").stdout)["prefix"]
    second_up = _cli("lab", "up", "--profile", str(tiny_profile)).stdout
    match = re.search(r"^lab (mp[0-9a-f]{6}) is up", second_up, re.MULTILINE)
    assert match, second_up
    second = match.group(1)
    pids = _daemon_pids(first) + _daemon_pids(second)
    try:
        assert first != second
        note = next(
            line for line in second_up.splitlines() if line.startswith("note: other labs are running")
        )
        assert first in note
        assert lab.prefix in note
        assert "credentials (generated for this run" in second_up
        assert "user mplab" in second_up
        status = _cli("lab", "status").stdout
        assert f"{first}  up" in status
        assert f"{second}  up" in status
        assert re.search(rf"{lab.prefix}  up +held by process {os.getpid()}", status)
        # Several labs: commands that need one refuse and name them.
        ambiguous = _cli("lab", "exec", "--", "true", check=False)
        assert ambiguous.returncode == 2
        assert first in ambiguous.stderr
        assert second in ambiguous.stderr
        inside = _cli("lab", "exec", "--prefix", first, "--", "ip", "-4", "-o", "addr").stdout
        assert "198.18.0.1/24" in inside
        assert (
            _cli("lab", "exec", "--prefix", second, "--", "sh", "-c", "exit 7", check=False).returncode == 7
        )
        refused = _cli("lab", "down", check=False)
        assert refused.returncode == 2
        assert "--prefix" in refused.stderr
        # `lab down` also clears crashed runs of anyone on this machine, so more may be listed.
        assert re.search(rf"removed \d+ lab\(s\): .*{first}", _cli("lab", "down", "--prefix", first).stdout)
        # One detached lab left: a plain `lab down` takes it, and leaves the session lab alone.
        others = [
            r.prefix for r in list_labs() if r.status == "up" and r.prefix != second and not r.owner_alive
        ]
        plain_down = _cli("lab", "down", *(["--prefix", second] if others else [])).stdout
        assert re.search(rf"removed \d+ lab\(s\): .*{second}", plain_down)
        assert f"left running: {lab.prefix}" in plain_down
    finally:
        for prefix in (first, second):
            if (STATE_ROOT / prefix).exists():
                _cli("lab", "down", "--prefix", prefix, check=False)
    _assert_gone(first, pids)
    _assert_gone(second, pids)
    assert _namespaces_of(lab.prefix), "the session lab must survive `lab down`"


@pytest.mark.usefixtures("removes_detached_labs")
def test_lab_down_all_cleans_up_after_a_killed_process(lab: Lab, tiny_profile: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tiny_profile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        prefix = holder.stdout.readline().strip()
        assert netns.PREFIX_PATTERN.fullmatch(prefix), holder.stderr.read() if holder.stderr else ""
        state = json.loads((STATE_ROOT / prefix / "state.json").read_text())
        daemon_pids = [d["pid"] for d in state["daemons"]]
        assert daemon_pids
        assert all(_running(pid) for pid in daemon_pids)
        os.kill(holder.pid, signal.SIGKILL)  # no atexit, no teardown: everything is left behind
        holder.wait(timeout=10)
    finally:
        holder.kill()
        holder.communicate(timeout=10)
    assert _namespaces_of(prefix)
    assert all(_running(pid) for pid in daemon_pids)
    assert f"{prefix}  crashed" in _cli("lab", "status").stdout
    result = _cli("lab", "down", "--all").stdout
    assert prefix in result
    assert f"left running: {lab.prefix}" in result
    _assert_gone(prefix, daemon_pids)
    assert _namespaces_of(lab.prefix), "the session lab is held by a live process and must survive"


@pytest.mark.usefixtures("removes_detached_labs")
def test_lab_down_all_removes_namespaces_whose_state_is_lost(lab: Lab) -> None:
    prefix = "mp" + os.urandom(3).hex()
    orphan = f"{prefix}-scan"
    netns.add_namespace(orphan)
    sleeper = subprocess.Popen(["ip", "netns", "exec", orphan, "sleep", "300"])
    try:
        assert any(r.prefix == prefix and r.status == "leftover" for r in list_labs())
        assert prefix in _cli("lab", "down", "--all").stdout
        sleeper.wait(timeout=10)
    finally:
        sleeper.kill()
        sleeper.wait()
        netns.delete_namespace(orphan)
    assert _namespaces_of(prefix) == []


def test_sigterm_to_the_owning_process_tears_the_lab_down(tiny_profile: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tiny_profile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        prefix = holder.stdout.readline().strip()
        assert netns.PREFIX_PATTERN.fullmatch(prefix)
        pids = [d["pid"] for d in json.loads((STATE_ROOT / prefix / "state.json").read_text())["daemons"]]
        holder.terminate()
        assert holder.wait(timeout=20) == -signal.SIGTERM
    finally:
        holder.kill()
        holder.communicate(timeout=10)
    _assert_gone(prefix, pids)


def test_a_daemon_that_does_not_answer_in_time_fails_the_bring_up_and_cleans_up(tiny_profile: Path) -> None:
    before = set(netns.list_namespaces())
    with pytest.raises(
        LabError, match=r"listener@solo did not answer on tcp 198\.18\.0\.10:8080 within 0 s: "
    ):
        Lab.up(tiny_profile, ready_timeout=0)
    # Labs other processes brought up meanwhile (another test session) are theirs, not a leftover.
    elsewhere = {
        r.prefix for r in list_labs() if r.owner_alive and (r.state or {}).get("owner_pid") != os.getpid()
    }
    earlier = {n.split("-")[0] for n in before}
    assert not [n for n in set(netns.list_namespaces()) - before if n.split("-")[0] not in elsewhere]
    assert not [r for r in list_labs() if r.prefix not in earlier | elsewhere]


def test_bad_profiles_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[profiles.x]\nssh = true\n[[hosts]]\nname = "h1"\nprofile = "nosuch"\n')
    with pytest.raises(ConfigError, match=r"bad.toml: hosts\[0\]: profile: unknown profile 'nosuch'"):
        Lab.up(bad)
    done = _cli("lab", "up", "--profile", str(bad), check=False)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("midprobe: error:")
    assert len(done.stderr.strip().splitlines()) == 1
    assert "unknown profile 'nosuch'" in done.stderr


def test_large_mode_has_a_sparse_slash_22(tiny_profile: Path) -> None:
    with Lab.up(tiny_profile, large=True) as big:
        assert big.large is not None
        network = big.large.network
        assert network == "198.18.4.0/22"
        assert 90 <= len(big.large.alive) <= 115  # about 10 % of 1022 addresses

        async def sweep() -> tuple[set[str], list[str]]:
            limit = asyncio.Semaphore(1100)
            answers: list[str] = []

            async def knock(address: str, wait: float) -> str:
                async with limit:
                    try:
                        _, writer = await asyncio.wait_for(asyncio.open_connection(address, 80), wait)
                    except TimeoutError:
                        return "silent"
                    except OSError as error:  # e.g. an ICMP unreachable: the address is not silent
                        return f"error {error.errno}"
                    writer.close()
                    answers.append(address)
                    return "open"

            addresses = [str(a) for a in ipaddress.ip_network(network).hosts()]
            outcomes = await asyncio.gather(*(knock(a, 1.0) for a in addresses))
            # On a busy machine a live host's answer can come later than a second: the silent
            # ones are asked once more, with longer to answer (every silent one waits it out).
            silent = [a for a, outcome in zip(addresses, outcomes, strict=True) if outcome == "silent"]
            outcomes += await asyncio.gather(*(knock(a, 4.0) for a in silent))
            return set(answers), sorted({o for o in outcomes if o not in ("open", "silent")})

        with big.namespace_thread() as thread:
            alive, other_outcomes = thread.run_async(sweep)
        assert alive == set(big.large.alive)
        assert other_outcomes == [], "addresses that are not alive must not answer at all"


def test_extra_hosts_are_cheap_linux_hosts_with_names(lab: Lab) -> None:
    with Lab.up(hosts=2) as bigger:
        extras = bigger.hosts[len(lab.hosts) :]
        assert [(h.name, h.address, h.profile) for h in extras] == [
            ("host01", "198.18.0.16", "linux_small"),
            ("host02", "198.18.0.17", "linux_small"),
        ]
        assert {h.fqdn.split(".")[1] for h in extras if h.fqdn} == {"sandiego", "sanjose"}
        for host in extras:
            assert host.services == ("ssh", "snmp")
            name = bigger.run(
                ["snmpget", "-v2c", "-c", bigger.credentials.snmp_community, "-Oqv", host.address,
                 "1.3.6.1.2.1.1.5.0"]
            )  # fmt: skip
            assert name.stdout.strip().strip('"') == host.name
            login = bigger.run(
                ["ssh", "-i", str(bigger.credentials.ssh_private_key), "-o", "BatchMode=yes",
                 "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                 f"{bigger.credentials.ssh_user}@{host.address}", "hostname"]
            )  # fmt: skip
            assert login.stdout.strip() == host.name


@pytest.mark.usefixtures("keeps_a_detached_lab")
def test_the_removal_hint_names_the_prefix_beside_another_lab_and_works_as_written(
    lab: Lab, tiny_profile: Path
) -> None:
    up = _cli("lab", "up", "--profile", str(tiny_profile)).stdout
    match = re.search(r"^lab (mp[0-9a-f]{6}) is up", up, re.MULTILINE)
    assert match, up
    prefix = match.group(1)
    pids = _daemon_pids(prefix)
    try:
        hint = re.search(r"remove it: (midprobe lab down.*)$", up, re.MULTILINE)
        assert hint, up
        assert hint.group(1) == f"midprobe lab down --prefix {prefix}"  # the session lab runs too
        status = _cli("lab", "status").stdout
        assert "neighbour tables (shared by every lab): arp_cache " in status
        removed = _cli(*hint.group(1).split()[1:])
        assert re.search(rf"removed \d+ lab\(s\): .*{prefix}", removed.stdout)
    finally:
        if (STATE_ROOT / prefix).exists():
            _cli("lab", "down", "--prefix", prefix, check=False)
    _assert_gone(prefix, pids)


def test_lab_exec_runs_this_midprobe_in_lab_mode_with_the_labs_dns(lab: Lab) -> None:
    linux1 = lab.host("linux1")
    assert linux1.fqdn
    # midprobe itself, found on PATH (the caller's PATH need not hold this midprobe's folder).
    found = _cli("lab", "exec", "--prefix", lab.prefix, "--", "sh", "-c", "command -v midprobe").stdout
    assert Path(found.strip()).parent == Path(sys.executable).parent
    # Other programs resolve through the lab's dnsmasq.
    resolver = _cli("lab", "exec", "--prefix", lab.prefix, "--", "cat", "/etc/resolv.conf").stdout
    assert f"nameserver {lab.dns_server}" in resolver
    # A scan without --lab or --dns-server: host names from the lab's DNS, and lab mode's refusal.
    scanned = _cli(
        "lab", "exec", "--prefix", lab.prefix, "--",
        "midprobe", "scan", "-Pn", "--no-banners", "-p", "22", "--format", "json", "-q", linux1.address,
    ).stdout  # fmt: skip
    (host,) = [json.loads(line) for line in scanned.splitlines() if line.startswith("{")]
    assert host["hostname"] == linux1.fqdn
    refused = _cli(
        "lab", "exec", "--prefix", lab.prefix, "--", "midprobe", "scan", "-p", "22", "10.0.0.1", check=False
    )
    assert refused.returncode == 2
    assert "lab" in refused.stderr
