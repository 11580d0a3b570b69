"""``midprobe discover run --local`` over the lab: phases through the queue, one CI per device."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from midprobe.runner.lab import Lab
from midprobe.runner.lab.credentials_file import lab_credentials_toml
from midprobe.runner.queue.url import open_queue, sqlite_url

pytestmark = pytest.mark.lab

EXPECTED_CLASSES = {
    "linux1": "cmdb_ci_linux_server",
    "switch1": "cmdb_ci_ip_switch",
    "printer1": "cmdb_ci_printer",
}


def _credentials(lab: Lab, path: Path) -> Path:
    """The lab's credentials file: SSH scoped to the Linux servers, SNMPv3 for every host (as the demo writes it)."""
    path.write_text(lab_credentials_toml(lab), encoding="utf-8")
    return path


def _midprobe(lab: Lab, *args: str, timeout: float = 120.0) -> tuple[str, str]:
    done = lab.run([sys.executable, "-m", "midprobe.runner", *args], timeout=timeout)
    return done.stdout, done.stderr


def _cis(lab: Lab, url: str) -> list[dict[str, Any]]:
    out, _ = _midprobe(lab, "cmdb", "list", "--queue", url, "--json")
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def _mac_of(lab: Lab, host: str, interface: str = "eth0") -> str:
    """The MAC the kernel gave ``interface`` in the host's namespace (read locally, no traffic)."""
    done = subprocess.run(
        ["ip", "-n", lab.host(host).namespace, "-o", "link", "show", interface],
        check=True,
        capture_output=True,
        text=True,
        timeout=20,
    )
    words = done.stdout.replace("\\", " ").split()
    return words[words.index("link/ether") + 1]


def _show(lab: Lab, url: str, host: str) -> dict[str, Any]:
    out, _ = _midprobe(lab, "cmdb", "show", lab.host(host).address, "--queue", url, "--json")
    shown: dict[str, Any] = json.loads(out)
    return shown


def test_a_local_discovery_fills_the_cmdb_and_a_second_run_adds_no_ci(lab: Lab, tmp_path: Path) -> None:
    _credentials(lab, tmp_path / "creds.toml")
    schedule = tmp_path / "lab.toml"
    schedule.write_text(
        f'name = "lab"\nranges = ["{lab.network}"]\ncredentials = "creds.toml"\nports = "22,80,161,443,9100"\n'
        'behaviour = ["ssh", "snmp", "http"]\n',
        encoding="utf-8",
    )
    url = sqlite_url(tmp_path / "ecc.db")
    out, err = _midprobe(
        lab, "discover", "run", str(schedule), "--queue", url, "--local", "--lab", "--follow"
    )
    status_id = out.split()[0]
    assert "Completed" in err
    first = {row["name"]: row for row in _cis(lab, url)}
    for host, ci_class in EXPECTED_CLASSES.items():
        matching = [row for name, row in first.items() if name.split(".")[0] == host]
        assert len(matching) == 1, (host, sorted(first))
        assert matching[0]["sys_class_name"] == ci_class, host
        assert matching[0]["ip_address"] == lab.host(host).address
        assert matching[0]["last_discovery"] == status_id
    linux = next(row for name, row in first.items() if name.startswith("linux1"))
    assert linux["os"]
    show, _ = _midprobe(lab, "cmdb", "show", linux["sys_id"], "--queue", url, "--json")
    assert lab.host("linux1").address in json.loads(show)["ip_addresses"]

    status_out, _ = _midprobe(lab, "discover", "status", status_id, "--queue", url, "--json")
    status = json.loads(status_out)
    assert status["state"] == "Completed"
    assert status["phases"]["scanning"]["completed"] >= 1
    for phase in ("identification", "exploration"):  # one each for linux1, switch1 and printer1
        assert status["phases"][phase] == {"started": 3, "completed": 3, "error": 0}, phase
    for host, probe in (("linux1", "SSHExplore"), ("switch1", "SNMPExplore"), ("printer1", "SNMPExplore")):
        said = [e["message"] for e in status["log"] if e["device"] == lab.host(host).address]
        assert any(m.startswith("MultiProbe (") for m in said), (host, said)
        assert any(m.startswith(f"{probe} found") for m in said), (host, said)
    silent = lab.host("silent1").address
    assert all(entry["device"] != silent for entry in status["log"])  # never answered: never classified
    # Every address of the /24 was port-scanned; those that answered are the devices the log has.
    answered = {e["device"] for e in status["log"] if e["message"].startswith("alive, open TCP ports")}
    assert status["addresses"] == {"total": 256, "decided": 256, "alive": len(answered), "incomplete": 0}

    with open_queue(url) as queue:  # every record of the discovery carries its status id
        records = [r for r in queue.list(limit=100_000) if r.topic != "queue.processing"]
    assert records
    assert {r.agent_correlator for r in records} == {status_id}
    for secret in lab.credentials.secrets():
        assert secret not in out + err + status_out

    again_out, _ = _midprobe(lab, "discover", "run", str(schedule), "--queue", url, "--local", "--lab")
    second = _cis(lab, url)
    assert sorted(row["sys_id"] for row in second) == sorted(row["sys_id"] for row in first.values())
    assert {row["last_discovery"] for row in second} == {again_out.split()[0]}

    # Identification and exploration put what the devices are made of into the CMDB.
    linux_ci = _show(lab, url, "linux1")
    assert [(i["name"], i["mac_address"], i["ip_addresses"]) for i in linux_ci["interfaces"]] == [
        ("eth0", _mac_of(lab, "linux1"), [lab.host("linux1").address, lab.host("linux1").address6])
    ]  # loopback is not an adapter of the device; IPv6 addresses from `ip -j addr`
    assert linux_ci["mac_address"] == _mac_of(lab, "linux1")
    assert int(linux_ci["cpu_count"]) >= 1
    assert int(linux_ci["ram"]) > 0
    switch = _show(lab, url, "switch1")
    adapters = {i["name"]: i for i in switch["interfaces"]}
    assert {f"Gi1-0-{n}" for n in range(1, 9)} | {"Vlan1", "eth0"} == set(adapters)
    assert adapters["Gi1-0-3"]["mac_address"] == _mac_of(lab, "switch1", "Gi1-0-3")
    # IP-MIB's ipAddressTable carries both families
    assert adapters["eth0"]["ip_addresses"] == [lab.host("switch1").address, lab.host("switch1").address6]
    assert (switch["serial_number"], switch["model_id"], switch["firmware_version"]) == (
        "FOC2048X1AB",
        "WS-C2960X-48TS-L",
        "15.2(7)E2",
    )  # ENTITY-MIB's chassis
    assert _show(lab, url, "printer1")["serial_number"] == "PHBLB12345"  # Printer-MIB
    # LLDP from real lldpd: the switch hears linux1's and printer1's frames over the lab bridge and
    # serves them in lldpRemTable (snmpd over AgentX); by the second run both are surely in the CMDB.
    printer_ci = _show(lab, url, "printer1")
    links = {(r["type"], r["direction"], r["other"]) for r in switch["relations"]}
    assert {
        ("Connects to::Connected by", "parent", linux_ci["sys_id"]),
        ("Connects to::Connected by", "parent", printer_ci["sys_id"]),
    } <= links
    assert {kind for kind, _, _ in links} == {"Connects to::Connected by"}
    shown, _ = _midprobe(lab, "cmdb", "show", "switch1", "--queue", url)
    assert "Connects to linux1" in shown
    # linux1's connector holds a TCP connection to printer1:9100: linux1 Depends on printer1.
    assert ("Depends on::Used by", "parent", printer_ci["sys_id"]) in {
        (r["type"], r["direction"], r["other"]) for r in linux_ci["relations"]
    }
    connections = linux_ci["exploration"]["cmdb_tcp_connection"]
    assert {
        (c["type"], c["remote_address"], c["remote_port"], c["process"])
        for c in connections
        if c["type"] == "established"
    } >= {("established", lab.host("printer1").address, "9100", Path(sys.executable).name[:15])}
    assert ("listening", "22", "tcp") in {(c["type"], c["local_port"], c["protocol"]) for c in connections}
    # The printer's snmpd (TCP-MIB) sees the same connection from its side.
    assert (lab.host("linux1").address, "9100") in {
        (c["remote_address"], c["local_port"])
        for c in printer_ci["exploration"]["cmdb_tcp_connection"]
        if c["type"] == "established"
    }
    assert linux_ci["exploration"]["cmdb_sam_sw_install"]  # dpkg's packages
    assert any(r["destination"] == "198.18.0.0/24" for r in linux_ci["exploration"]["cmdb_ci_ip_route"])
    assert any(
        r["ip_address"] == lab.scanner_address for r in switch["exploration"]["discovery_net_arp_table"]
    )
    linux_shown, _ = _midprobe(lab, "cmdb", "show", "linux1", "--queue", url)
    assert "Depends on printer1" in linux_shown
    drawn, _ = _midprobe(lab, "cmdb", "map", "--queue", url, "--format", "dot")
    assert "Depends on" in drawn
    assert "style=dashed" in drawn
    assert f"Gi1-0-3  {_mac_of(lab, 'switch1', 'Gi1-0-3')}" in shown
    again_status, _ = _midprobe(lab, "discover", "status", again_out.split()[0], "--queue", url, "--json")
    identified = [
        e["message"]
        for e in json.loads(again_status)["log"]
        if e["device"] == lab.host("switch1").address and e["phase"] == "identification"
    ]
    assert any("updated (by serial_number" in m for m in identified), identified


def test_bad_schedule_is_one_line_and_exit_2(lab: Lab, tmp_path: Path) -> None:
    schedule = tmp_path / "bad.toml"
    schedule.write_text('name = "x"\nranges = ["198.18.0.0/24"]\nbatch_size = 10\n', encoding="utf-8")
    done = lab.run(
        [sys.executable, "-m", "midprobe.runner", "discover", "run", str(schedule), "--local", "--lab"],
        check=False,
    )
    assert done.returncode == 2
    assert "batch_size" in done.stderr
    assert "Traceback" not in done.stderr
    outside = tmp_path / "outside.toml"
    outside.write_text('name = "x"\nranges = ["192.0.2.0/24"]\n', encoding="utf-8")
    done = lab.run(
        [sys.executable, "-m", "midprobe.runner", "discover", "run", str(outside), "--local", "--lab"],
        check=False,
    )
    assert done.returncode == 2
    assert "192.0.2.0" in done.stderr
    resolver = tmp_path / "resolver.toml"
    resolver.write_text(
        'name = "x"\nranges = ["198.18.0.0/24"]\nenrichment = ["names"]\ndns_servers = ["192.0.2.53"]\n',
        encoding="utf-8",
    )
    done = lab.run(
        [sys.executable, "-m", "midprobe.runner", "discover", "run", str(resolver), "--local", "--lab"],
        check=False,
    )
    assert done.returncode == 2
    assert "DNS server 192.0.2.53" in done.stderr


def test_a_classification_only_discovery_sweeps_first_reads_banners_and_writes_no_ci(
    lab: Lab, tmp_path: Path
) -> None:
    """The scan's options as schedule keys: host discovery before Shazzam, its answer in pages,
    banners beside classification, stopping after classification with nothing written."""
    _credentials(lab, tmp_path / "creds.toml")
    schedule = tmp_path / "scan.toml"
    schedule.write_text(
        f'name = "scan"\nranges = ["{lab.network}"]\ncredentials = "creds.toml"\nports = "22,80,161,9100"\n'
        'behaviour = ["ssh", "snmp"]\nhost_discovery = true\npage_wait = 50\nenrichment = ["banners", "names"]\n'
        f'dns_servers = ["{lab.dns_server}"]\n'
        'depth = "classification"\ncmdb = false\nengine = "connect"\nconnect_wait = 500\nretries = 1\n',
        encoding="utf-8",
    )
    url = sqlite_url(tmp_path / "ecc.db")
    out, err = _midprobe(
        lab, "discover", "run", str(schedule), "--queue", url, "--local", "--lab", "--follow"
    )
    assert "Completed" in err
    status_out, _ = _midprobe(lab, "discover", "status", out.split()[0], "--queue", url, "--json")
    status = json.loads(status_out)
    by_device: dict[str, list[str]] = {}
    for entry in status["log"]:
        by_device.setdefault(entry["device"], []).append(entry["message"])
    assert any(
        m.startswith("HostSweep (") and m.endswith("addresses answered") for m in by_device[lab.network]
    ), by_device[lab.network]
    # The sweep decided the silent addresses, the port scan the others: every one of the /24.
    assert status["addresses"]["decided"] == status["addresses"]["total"] == 256
    assert status["phases"]["identification"]["started"] == 0  # classification was the last phase
    linux1 = by_device[lab.host("linux1").address]
    assert any(m.startswith("BannerSniff found 22 SSH-2.0-OpenSSH") for m in linux1), linux1
    assert f"DNSNameResolver found PTR name {lab.host('linux1').fqdn}" in linux1, linux1
    assert any("classified it cmdb_ci_linux_server; not written to the CMDB" in m for m in linux1), linux1
    assert linux1[-1] == "done: nothing more runs for this device"
    # Everything the host's answers said, weighed at once: the class `midprobe scan` would report.
    assert any(m.startswith("combined verdict: cmdb_ci_linux_server (") for m in linux1), linux1
    printer = by_device[lab.host("printer1").address]
    assert any("classified it cmdb_ci_printer; not written" in m for m in printer), printer
    assert any(m.startswith("combined verdict: cmdb_ci_printer (") for m in printer), printer
    assert _cis(lab, url) == []


def test_a_schedule_may_name_hosts_which_the_agent_resolves_through_the_lab_s_dns(
    lab: Lab, tmp_path: Path
) -> None:
    """A host name in the ranges: its own Shazzam, resolved by the agent (in lab mode, by the lab's
    DNS server only), and the host discovered and written as any address would be."""
    _credentials(lab, tmp_path / "creds.toml")
    linux1, printer1 = lab.host("linux1"), lab.host("printer1")
    assert linux1.fqdn is not None
    schedule = tmp_path / "named.toml"
    schedule.write_text(
        f'name = "named"\nranges = ["{linux1.fqdn}", "{printer1.address}"]\ncredentials = "creds.toml"\n'
        f'ports = "22,161,9100"\ndepth = "identification"\ndns_servers = ["{lab.dns_server}"]\n',
        encoding="utf-8",
    )
    url = sqlite_url(tmp_path / "ecc.db")
    without = tmp_path / "no-dns.toml"  # lab mode resolves names only through the lab's DNS server
    without.write_text(f'name = "x"\nranges = ["{linux1.fqdn}"]\n', encoding="utf-8")
    refused = lab.run(
        [
            sys.executable,
            "-m",
            "midprobe.runner",
            "discover",
            "run",
            str(without),
            "--queue",
            url,
            "--local",
            "--lab",
        ],
        check=False,
    )
    assert refused.returncode == 2
    assert "give the schedule's dns_servers" in refused.stderr
    _midprobe(lab, "discover", "run", str(schedule), "--queue", url, "--local", "--lab")
    found = {ci["ip_address"]: ci["sys_class_name"] for ci in _cis(lab, url)}
    assert found == {linux1.address: "cmdb_ci_linux_server", printer1.address: "cmdb_ci_printer"}
