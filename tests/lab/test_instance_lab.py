"""``midprobe instance serve`` as a real process inside the lab: HTTPS with the CA it made, basic auth, SIGTERM."""

from __future__ import annotations

import signal
import ssl
from pathlib import Path

import httpx
import pytest

from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.instance.auth import open_users
from midprobe.runner.lab import Lab, NamespaceThread
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.lab.instance_support import serve_instance

pytestmark = pytest.mark.lab

PASSWORD = "lab mid password"
QUEUE = "/api/now/table/ecc_queue"


def test_the_instance_serves_the_table_api_over_https_with_its_own_ca(
    lab: Lab, lab_thread: NamespaceThread, tmp_path: Path
) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    with open_users(url) as users:
        users.add("mid1", PASSWORD, ("mid_server",))
    output = EccRecord(agent="mid1", topic="Shazzam", queue="output", name="198.18.0.0/24")
    with open_queue(url) as queue:
        queue.enqueue(output)

    process, base, ca = serve_instance(lab, url, "127.0.0.1:0")
    try:
        assert ca == tmp_path / "ecc-tls" / "ca.pem"  # next to the database
        pinned = ssl.create_default_context(cafile=str(ca))

        def talk() -> tuple[httpx.Response, httpx.Response, httpx.Response, str]:
            with httpx.Client(base_url=base, verify=pinned, auth=("mid1", PASSWORD), timeout=30) as client:
                work = client.get(
                    QUEUE,
                    params={
                        "sysparm_query": "agent=mid.server.mid1^state=ready",
                        "sysparm_fields": "sys_id,name",
                    },
                )
                answer = client.post(
                    QUEUE,
                    json={
                        "agent": "mid1",
                        "topic": "Shazzam",
                        "queue": "input",
                        "response_to": output.sys_id,
                    },
                )
            with httpx.Client(base_url=base, verify=pinned, timeout=30) as anonymous:
                refused = anonymous.get(QUEUE)
            # Without the instance's CA the client does not trust it.
            with httpx.Client(base_url=base, timeout=30) as unpinned:
                try:
                    unpinned.get(QUEUE)
                except httpx.ConnectError as error:
                    untrusted = str(error)
                else:
                    untrusted = "trusted"
            return work, answer, refused, untrusted

        work, answer, refused, untrusted = lab_thread.call(talk)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)

    assert work.status_code == 200, work.text
    assert work.json() == {"result": [{"sys_id": output.sys_id, "name": "198.18.0.0/24"}]}
    assert answer.status_code == 201, answer.text
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "User Not Authenticated"
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted
    assert process.returncode == 0, stderr
    assert PASSWORD not in stderr
    with open_queue(url) as queue:
        stored = queue.get(output.sys_id)
        assert stored is not None
        assert stored.state == "processed"
