"""A private sshd for the SSH probe tests: its own network namespace, host keys, user and config.

The real Debian ``sshd`` listens on 127.0.0.1 inside a namespace this harness creates
(``mpssh<pid><hex>``, removed by ``close()`` or at exit); it runs in private UTS and mount
namespaces where a generated /etc/passwd, /etc/shadow and /etc/sudoers hold the test users and
their sudo rules, so the machine's user database and sudo configuration are never touched.
Keys and passwords are generated per run.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from midprobe.runner.lab.netns import NamespaceThread, add_namespace, delete_namespace, namespace_thread

SSHD = "/usr/sbin/sshd"
TEST_USER = "mpsshtest"
TEST_UID = 64998
#: May run anything as root with ``sudo`` after giving its own password.
SUDO_USER = TEST_USER
#: May run anything as root with ``sudo`` without a password (NOPASSWD).
SUDO_NOPASSWD_USER = "mpsshnopw"
#: sudo asks for the target user's (root's) password, which is locked: no password can satisfy it.
SUDO_TARGETPW_USER = "mpsshtgtpw"
#: No sudo rule at all.
NO_SUDO_USER = "mpsshnone"
#: Every login user of the bed and its uid; they share the bed's password and authorized keys.
USERS = {
    TEST_USER: TEST_UID,
    SUDO_NOPASSWD_USER: 64997,
    SUDO_TARGETPW_USER: 64996,
    NO_SUDO_USER: 64995,
}
TEST_HOSTNAME = "sshtest"
KEY_PASSPHRASE_LENGTH = 16
_WRAPPER = (
    'hostname "$1" || exit 97; shift; '
    'while [ "$1" != "--" ]; do mount --bind "$1" "$2" || exit 98; shift 2; done; shift; exec "$@"'
)


@dataclass
class SSHServer:
    """One running sshd of the test bed."""

    port: int
    host_key: Path
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def keygen(path: Path, key_type: str = "ed25519", passphrase: str = "", *, fmt: str | None = None) -> Path:
    argv = ["ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-C", "midprobe-test", "-f", str(path)]
    if fmt:
        argv += ["-m", fmt]
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    return path


class SSHTestBed:
    """A namespace with a loopback, test users (password + keys, sudo rules) and any number of sshd instances.

    ``user`` is the main test user (sudo with its password); ``USERS`` lists the others, which differ
    only by their sudo rule (see ``sudoers_text``).
    """

    def __init__(self) -> None:
        # Its own folder, readable by the test user (sshd reads authorized_keys as that user);
        # pytest's tmp_path lives under a root-only 0700 folder.
        self.workdir = Path(tempfile.mkdtemp(prefix="mpsshtest-"))
        self.workdir.chmod(0o755)
        workdir = self.workdir
        # Not the lab's "mp<6 hex>-role" shape: the lab's leftover cleanup would take it for a crashed lab.
        self.namespace = f"mpssh{os.getpid()}{secrets.token_hex(2)}"
        self.user = TEST_USER
        self.password = secrets.token_urlsafe(12)
        self.key_passphrase = secrets.token_urlsafe(KEY_PASSPHRASE_LENGTH)
        self._servers: list[SSHServer] = []
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        add_namespace(self.namespace)
        atexit.register(self.close)
        try:
            self.thread: NamespaceThread = namespace_thread(self.namespace)
            self.ed25519_key = keygen(workdir / "id_ed25519")
            self.ecdsa_key = keygen(workdir / "id_ecdsa", "ecdsa", self.key_passphrase)
            self.rsa_pem_key = keygen(workdir / "id_rsa", "rsa", self.key_passphrase, fmt="PEM")
            self.authorized_keys = workdir / "authorized_keys"
            self.authorized_keys.write_text(
                "".join(
                    Path(f"{key}.pub").read_text()
                    for key in (self.ed25519_key, self.ecdsa_key, self.rsa_pem_key)
                )
            )
            self.passwd, self.shadow = self._user_database()
            self.sudoers = self._sudoers()
        except BaseException:
            self.close()
            raise

    def _user_database(self) -> tuple[Path, Path]:
        hashed = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"],
            input=self.password,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        days = int(time.time() // 86400)
        keep = {"root", "nobody", "sshd"}
        system = [
            line for line in Path("/etc/passwd").read_text().splitlines() if line.split(":", 1)[0] in keep
        ]
        if not any(line.startswith("sshd:") for line in system):
            system.append("sshd:x:103:65534::/run/sshd:/usr/sbin/nologin")
        passwd = self.workdir / "passwd"
        users = [f"{user}:x:{uid}:65534:midprobe test:/:/bin/sh" for user, uid in USERS.items()]
        passwd.write_text("\n".join([*system, *users]) + "\n")
        passwd.chmod(0o644)
        shadow = self.workdir / "shadow"
        shadow.touch(mode=0o600)
        lines = [f"{line.split(':', 1)[0]}:*:{days}:0:99999:7:::" for line in system]
        lines += [f"{user}:{hashed}:{days}:0:99999:7:::" for user in USERS]
        shadow.write_text("\n".join(lines) + "\n")
        return passwd, shadow

    def sudoers_text(self) -> str:
        """The bed's /etc/sudoers: one rule per user kind; nothing cached, logged or mailed."""
        timestamps = self.workdir / "sudo-ts"
        return "\n".join(
            [
                "Defaults env_reset",
                "Defaults use_pty",  # as Debian ships it
                'Defaults secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"',
                # Ask every time (each test sees the prompt), and keep the time stamps in the bed.
                "Defaults timestamp_timeout=0",
                f"Defaults timestampdir={timestamps}",
                # The bed's namespace has no name service: no host name look-ups, no syslog, no mail.
                "Defaults !fqdn",
                "Defaults !syslog",
                "Defaults !mailerpath",
                f"Defaults:{SUDO_TARGETPW_USER} targetpw",
                "root ALL=(ALL:ALL) ALL",
                f"{SUDO_USER} ALL=(ALL:ALL) ALL",
                f"{SUDO_NOPASSWD_USER} ALL=(ALL:ALL) NOPASSWD: ALL",
                f"{SUDO_TARGETPW_USER} ALL=(ALL:ALL) ALL",
                "",
            ]
        )

    def _sudoers(self) -> Path:
        sudoers = self.workdir / "sudoers"
        sudoers.write_text(self.sudoers_text())
        sudoers.chmod(0o440)  # as visudo leaves it; sudo refuses a sudoers file others may write
        subprocess.run(
            ["visudo", "-c", "-q", "-f", str(sudoers)], check=True, capture_output=True, timeout=30
        )
        (self.workdir / "sudo-ts").mkdir(mode=0o700)
        return sudoers

    def new_host_key(self, name: str) -> Path:
        return keygen(self.workdir / name)

    def start_sshd(
        self, port: int = 22, host_key: Path | None = None, *, max_sessions: int = 50
    ) -> SSHServer:
        host_key = host_key or self.new_host_key(f"host_key_{port}_{len(self._servers)}")
        config = self.workdir / f"sshd_config_{port}_{len(self._servers)}"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress 127.0.0.1:{port}",
                    f"HostKey {host_key}",
                    "PidFile none",
                    "UsePAM no",
                    "PasswordAuthentication yes",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    "StrictModes no",
                    "PermitRootLogin no",
                    f"AllowUsers {' '.join(USERS)}",
                    "UseDNS no",
                    "PrintMotd no",
                    "PrintLastLog no",
                    "MaxStartups 200:30:400",
                    f"MaxSessions {max_sessions}",
                    "MaxAuthTries 10",
                    "LogLevel ERROR",
                ]
            )
            + "\n"
        )
        log = self.workdir / f"sshd_{port}.log"
        binds = [
            *(str(self.passwd), "/etc/passwd"),
            *(str(self.shadow), "/etc/shadow"),
            *(str(self.sudoers), "/etc/sudoers"),
        ]
        argv = [
            "ip", "netns", "exec", self.namespace,
            "unshare", "--uts", "--mount", "--propagation", "private", "--",
            "/bin/sh", "-c", _WRAPPER, "sh", TEST_HOSTNAME, *binds, "--", SSHD, "-D", "-e", "-f", str(config),
        ]  # fmt: skip
        with open(log, "ab") as handle:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = SSHServer(port, host_key, process, log)
        self._servers.append(server)
        self._wait_listening(server)
        return server

    def _wait_listening(self, server: SSHServer) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {server.log.read_text(errors='replace')[-500:]}")
            if self.thread.call(lambda: _can_connect("127.0.0.1", server.port)):
                return
            time.sleep(0.05)
        raise RuntimeError("sshd did not start listening within 15 s")

    def established(self, port: int) -> int:
        """TCP connections established to 127.0.0.1:``port`` right now (counted by ``ss``)."""
        return len(self.established_peers(port))

    def established_peers(self, port: int) -> set[int]:
        """The client ports of the TCP connections established to 127.0.0.1:``port`` right now."""
        done = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.namespace,
                "ss",
                "-Htn",
                "state",
                "established",
                f"( sport = :{port} )",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return {int(line.split()[-1].rsplit(":", 1)[1]) for line in done.stdout.splitlines() if line.strip()}

    def credentials_toml(self, *, password: str | None = None) -> str:
        """A credentials file (issue shape) for this bed: a password entry and three key entries."""
        return "\n".join(
            [
                "[[credential]]",
                'id = "test-password"',
                'type = "ssh_password"',
                f'user = "{self.user}"',
                f'password = "{password or self.password}"',
                "order = 10",
                "[[credential]]",
                'id = "test-ed25519"',
                'type = "ssh_private_key"',
                f'user = "{self.user}"',
                f'private_key_file = "{self.ed25519_key}"',
                "order = 20",
                "[[credential]]",
                'id = "test-ecdsa"',
                'type = "ssh_private_key"',
                f'user = "{self.user}"',
                f'private_key_file = "{self.ecdsa_key}"',
                'passphrase_env = "MP_TEST_KEY_PASSPHRASE"',
                "order = 30",
                "[[credential]]",
                'id = "test-rsa-pem"',
                'type = "ssh_private_key"',
                f'user = "{self.user}"',
                f'private_key_file = "{self.rsa_pem_key}"',
                'passphrase_env = "MP_TEST_KEY_PASSPHRASE"',
                "order = 40",
                "",
            ]
        )

    def user_credentials_toml(self, user: str) -> str:
        """Two credentials for ``user``: ``<user>-password`` and ``<user>-ed25519`` (the unencrypted key)."""
        return "\n".join(
            [
                "[[credential]]",
                f'id = "{user}-password"',
                'type = "ssh_password"',
                f'user = "{user}"',
                f'password = "{self.password}"',
                "[[credential]]",
                f'id = "{user}-ed25519"',
                'type = "ssh_private_key"',
                f'user = "{user}"',
                f'private_key_file = "{self.ed25519_key}"',
                "",
            ]
        )

    def close(self) -> None:
        atexit.unregister(self.close)
        for server in self._servers:
            server.stop()
        thread = getattr(self, "thread", None)
        if thread is not None:
            thread.close()
        delete_namespace(self.namespace)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class HangingServer:
    """Accepts TCP connections on 127.0.0.1:``port`` in the bed's namespace, sends a banner, then says nothing."""

    def __init__(
        self, bed: SSHTestBed, port: int, banner: bytes = b"SSH-2.0-x\r\n", *, limit: float = 60.0
    ) -> None:
        self.banner = banner
        self._stop = threading.Event()
        self._listener = bed.thread.call(lambda: socket.create_server(("127.0.0.1", port)))
        self._listener.settimeout(0.2)
        self._held: list[socket.socket] = []
        self._deadline = time.monotonic() + limit  # bounded even if nobody calls close()
        self._thread = threading.Thread(target=self._serve, name="hanging-ssh", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.banner:
                connection.sendall(self.banner)
            self._held.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for connection in self._held:
            connection.close()
