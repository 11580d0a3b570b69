"""A private snmpd for the SNMP probe tests: its own network namespace, config and users.

The real Debian ``snmpd`` listens on 127.0.0.1 inside a namespace this harness creates
(``mpsnmp<pid><hex>``, removed by ``close()`` or at exit). It serves a v1/v2c community,
an SNMPv3 SHA/AES user (authPriv) and an SHA-only user (authNoPriv), all generated per
run. ``veth_pairs`` adds interface pairs to the namespace so ifTable can be made large.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from midprobe.runner.lab import NamespaceThread, namespace_thread
from midprobe.runner.lab.netns import add_namespace, delete_namespace, ip_batch

T = TypeVar("T")
SNMPD = "/usr/sbin/snmpd"
SYS_DESCR = "Linux snmptest 6.1.0-28-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 x86_64"
SYS_OBJECT_ID = ".1.3.6.1.4.1.8072.3.2.10"


@contextlib.contextmanager
def scratch_namespace(prefix: str) -> Iterator[NamespaceThread]:
    """An empty private namespace (loopback only) for a scripted agent, and a thread inside it."""
    name = f"{prefix}{os.getpid()}{secrets.token_hex(2)}"
    add_namespace(name)
    try:
        with namespace_thread(name) as inside:
            yield inside
    finally:
        delete_namespace(name)


class SnmpdTestBed:
    """A namespace with snmpd on 127.0.0.1:161 and the credentials to talk to it."""

    def __init__(self, *, veth_pairs: int = 0, extra_config: Sequence[str] = ()) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="mpsnmptest-"))
        # Not the lab's "mp<6 hex>-role" shape: the lab's leftover cleanup would take it for a crashed lab.
        self.namespace = f"mpsnmp{os.getpid()}{secrets.token_hex(2)}"
        self.address = "127.0.0.1"
        self.port = 161
        self.community = "mpc-" + secrets.token_hex(6)
        self.v3_user = "mpv3user"
        self.v3_auth_key = "mpa-" + secrets.token_hex(8)
        self.v3_priv_key = "mpp-" + secrets.token_hex(8)
        self.v3_auth_only_user = "mpv3auth"
        self.veth_pairs = veth_pairs
        self._process: subprocess.Popen[bytes] | None = None
        add_namespace(self.namespace)
        atexit.register(self.close)
        try:
            if veth_pairs:
                ip_batch(
                    (f"link add mpa{n} type veth peer name mpb{n}" for n in range(veth_pairs)),
                    namespace=self.namespace,
                )
            self.thread: NamespaceThread = namespace_thread(self.namespace)
            self._start(extra_config)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> SnmpdTestBed:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, factory: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine inside the namespace (where 127.0.0.1 is this snmpd)."""
        return self.thread.run_async(factory)

    @property
    def env(self) -> dict[str, str]:
        """Environment for net-snmp tools: no MIB loading, persistent files in the workdir."""
        return {
            **os.environ,
            "MIBS": "",
            "MIBDIRS": "/nonexistent",
            "SNMP_PERSISTENT_DIR": str(self.workdir / "tools"),
        }

    def _start(self, extra_config: Sequence[str]) -> None:
        persistent = self.workdir / "persistent"
        persistent.mkdir(mode=0o700)
        config = self.workdir / "snmpd.conf"
        config.touch(mode=0o600)
        config.write_text(
            "\n".join(
                [
                    f"rocommunity {self.community} default",
                    f'createUser {self.v3_user} SHA "{self.v3_auth_key}" AES "{self.v3_priv_key}"',
                    f"rouser {self.v3_user} priv",
                    f'createUser {self.v3_auth_only_user} SHA "{self.v3_auth_key}"',
                    f"rouser {self.v3_auth_only_user} auth",
                    "sysName snmptest",
                    f"sysDescr {SYS_DESCR}",
                    f"sysObjectID {SYS_OBJECT_ID}",
                    "sysLocation test bed",
                    "sysContact tests@example.test",
                    "sysServices 72",
                    "agentXSocket none",
                    "master off",
                    *extra_config,
                ]
            )
            + "\n"
        )
        log = self.workdir / "snmpd.log"
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(persistent), "MIBS": "", "MIBDIRS": "/nonexistent"}
        argv = ["ip", "netns", "exec", self.namespace, SNMPD, "-f", "-Lf", str(log), "-C", "-c", str(config)]
        argv += ["-I", "-smux", f"udp:{self.address}:{self.port}"]
        self._process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"snmpd exited: {log.read_text(errors='replace')[-500:]}")
            answer = self.snmp_tool(
                [
                    "snmpget",
                    "-v2c",
                    "-c",
                    self.community,
                    "-t",
                    "0.3",
                    "-r",
                    "0",
                    "-On",
                    self._agent,
                    ".1.3.6.1.2.1.1.5.0",
                ],
                check=False,
            )
            if answer.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("snmpd did not answer within 15 s")

    @property
    def _agent(self) -> str:
        return f"{self.address}:{self.port}"

    def snmp_tool(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a net-snmp tool (``snmpget``, ``snmpbulkwalk``, ...) inside the namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.namespace, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            env=self.env,
        )

    def bulkwalk(self, subtree: str) -> str:
        """net-snmp's own walk of ``subtree`` (``snmpbulkwalk -v2c -On``), for comparisons."""
        return self.snmp_tool(
            ["snmpbulkwalk", "-v2c", "-c", self.community, "-On", "-Cr50", self._agent, subtree]
        ).stdout

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        thread = getattr(self, "thread", None)
        if thread is not None:
            thread.close()
        delete_namespace(self.namespace)
        shutil.rmtree(self.workdir, ignore_errors=True)
