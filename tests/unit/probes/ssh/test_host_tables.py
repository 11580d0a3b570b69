"""The SSH exploration's table parsers: routes, neighbours, sockets, disks, packages, processes (pure)."""

from __future__ import annotations

from midprobe.probes.ssh.host_tables import (
    Disk,
    HostNeighbour,
    HostRoute,
    Package,
    Process,
    Socket,
    parse_disks,
    parse_established,
    parse_listening,
    parse_neighbours,
    parse_packages,
    parse_processes,
    parse_routes,
)


def test_routes_default_and_connected_ipv4_and_ipv6_local_types_left_out() -> None:
    v4 = (
        '[{"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]},'
        '{"dst":"192.0.2.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"192.0.2.2","flags":[]},'
        '{"type":"blackhole","dst":"198.18.9.0/24","flags":[]}]'
    )
    v6 = '[{"dst":"default","gateway":"fd00::1","dev":"eth0","metric":1024,"flags":[],"pref":"medium"}]'
    assert parse_routes(v4) + parse_routes(v6) == (
        HostRoute("0.0.0.0/0", "192.0.2.1", "eth0"),
        HostRoute("192.0.2.0/24", None, "eth0", "kernel"),
        HostRoute("::/0", "fd00::1", "eth0", None, 1024),
    )
    assert parse_routes("not json") == parse_routes('{"a": 1}') == ()


def test_neighbours_with_a_mac_and_its_vendor_failed_ones_left_out() -> None:
    text = (
        '[{"dst":"192.0.2.1","dev":"eth0","lladdr":"00:00:0C:00:00:05","state":["STALE"]},'
        '{"dst":"fd00::1","dev":"eth0","state":["FAILED"]}]'
    )
    assert parse_neighbours(text) == (
        HostNeighbour("192.0.2.1", "00:00:0c:00:00:05", "eth0", "STALE", "Cisco Systems, Inc"),
    )


def test_listening_sockets_with_their_processes_one_per_wildcard_port() -> None:
    text = (
        'udp UNCONN 0      0          [::1]:46484    [::]:* users:(("python3",pid=16471,fd=4))\n'
        'tcp LISTEN 0      128    198.18.0.10:22 0.0.0.0:* users:(("sshd",pid=301,fd=3))\n'
        'tcp LISTEN 0      128      0.0.0.0:2024  0.0.0.0:* users:(("agent",pid=9,fd=3))\n'
        "tcp LISTEN 0      128         [::]:2024     [::]:*\n"
        'tcp LISTEN 0      5   [fe80::1]%eth0:8080     [::]:* users:(("a \\"b\\"",pid=7,fd=3))\n'
    )
    assert parse_listening(text) == (
        Socket("udp", "::1", 46484, process="python3", pid=16471),
        Socket("tcp", "198.18.0.10", 22, process="sshd", pid=301),
        Socket("tcp", "*", 2024, process="agent", pid=9),  # the first of the two wildcards
        Socket("tcp", "fe80::1", 8080, process='a "b"', pid=7),
    )


def test_established_connections_both_ends_and_the_process_when_shown() -> None:
    text = (
        '0      0      198.18.0.10:41822 198.18.0.12:9100 users:(("lab-client",pid=88,fd=3))\n'
        "0      0      [::ffff:198.18.0.10]:22 [::ffff:198.18.0.1]:50000\n"
        "garbage line\n"
    )
    assert parse_established(text) == (
        Socket("tcp", "198.18.0.10", 41822, "198.18.0.12", 9100, "lab-client", 88),
        Socket("tcp", "198.18.0.10", 22, "198.18.0.1", 50000),
    )


def test_disks_with_a_size_only() -> None:
    text = """{"blockdevices": [
      {"name": "zram0", "size": 0, "type": "disk", "model": null, "serial": null, "rota": false, "tran": null},
      {"name": "nvme0n1", "size": 512110190592, "type": "disk", "model": "Samsung SSD 980", "serial": "S64DNF0R",
       "rota": false, "tran": "nvme"},
      {"name": "sr0", "size": 1073741312, "type": "rom", "model": "DVD", "serial": null, "rota": true, "tran": "sata"}
    ]}"""
    assert parse_disks(text) == (Disk("nvme0n1", 512110190592, "Samsung SSD 980", "S64DNF0R", "nvme", False),)
    assert parse_disks("") == parse_disks("[1]") == ()


def test_packages_from_dpkg_or_rpm_lines() -> None:
    text = "adduser\t3.134\tall\nopenssl\t3.0.15-1~deb12u1\tamd64\nbroken line\n\t1.0\tall\n"
    assert parse_packages(text) == (
        Package("adduser", "3.134", "all"),
        Package("openssl", "3.0.15-1~deb12u1", "amd64"),
    )


def test_processes_without_command_lines() -> None:
    text = (
        "    1     0 root     systemd\n  301     1 root     sshd\n  x y z\n  88   301 mplab    lab client\n"
    )
    assert parse_processes(text) == (
        Process(1, 0, "root", "systemd"),
        Process(301, 1, "root", "sshd"),
        Process(88, 301, "mplab", "lab client"),
    )
