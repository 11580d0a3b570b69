"""Claiming under contention: several queue objects (threads) and several processes, 1,000 records."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from midprobe.runner.ecc.builders import new_input_record, new_output_record
from midprobe.runner.ecc.payload import decode_queue_processing
from midprobe.runner.queue import open_queue

RECORDS = 1000

# A claiming agent in a child process: waits for the go file, then claims and completes until empty.
_CHILD = r"""
import sys, time
from pathlib import Path
from midprobe.runner.ecc.builders import new_input_record
from midprobe.runner.queue import open_queue

url, name, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
with open_queue(url) as queue:
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.01)
    while batch := queue.claim("pool", 10, 60.0):
        for record in batch:
            queue.complete(record.sys_id, new_input_record(record, agent=name, results=[], probe_time_ms=0))
            print(record.sys_id, flush=True)
"""


def _fill(url: str) -> set[str]:
    records = [
        new_output_record(agent="pool", topic="HeartbeatProbe", priority=i % 3, parameters={"i": str(i)})
        for i in range(RECORDS)
    ]
    with open_queue(url) as queue:
        queue.enqueue_many(records)
    return {record.sys_id for record in records}


def _check_claim_records(url: str, expected: set[str]) -> None:
    with open_queue(url) as queue:
        listed = [
            sys_id
            for claim in queue.list(topic="queue.processing", limit=10_000)
            for sys_id in decode_queue_processing(claim.payload)
        ]
        assert len(listed) == len(set(listed)) == RECORDS
        assert set(listed) == expected
        states = Counter(r.state for r in queue.list(queue_side="output", limit=10_000))
        assert states == Counter({"processed": RECORDS})
        answers = Counter(
            r.response_to for r in queue.list(queue_side="input", topic="HeartbeatProbe", limit=10_000)
        )
        assert answers == Counter(dict.fromkeys(expected, 1))


@pytest.mark.parametrize("shared", [False, True], ids=["own queue objects", "one pooled queue"])
def test_four_queue_objects_in_threads_claim_each_record_exactly_once(queue_url: str, shared: bool) -> None:
    """Four threads, each with its own queue object, or all through one (PostgreSQL: 4 connections, as the instance)."""
    expected = _fill(queue_url)
    claimed: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)
    pooled = open_queue(queue_url, connections=4) if shared else None

    def agent(name: str) -> None:
        mine: list[str] = []
        claimed[name] = mine
        try:
            with contextlib.nullcontext(pooled) if pooled is not None else open_queue(queue_url) as queue:
                barrier.wait()
                while batch := queue.claim("pool", 10, 60.0):
                    mine.extend(record.sys_id for record in batch)
                    for record in batch:
                        answer = new_input_record(record, agent=name, results=[], probe_time_ms=0)
                        assert queue.complete(record.sys_id, answer)
        except BaseException as error:  # reported below: a thread's exception is otherwise lost
            errors.append(error)

    threads = [threading.Thread(target=agent, args=(f"agent{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    if pooled is not None:
        pooled.close()
    assert not errors, errors
    everything = [sys_id for ids in claimed.values() for sys_id in ids]
    assert len(everything) == len(set(everything)) == RECORDS
    assert set(everything) == expected
    assert sum(1 for ids in claimed.values() if ids) >= 2, "the claims never overlapped in time"
    _check_claim_records(queue_url, expected)


def test_two_processes_claim_each_record_exactly_once(queue_url: str, tmp_path: Path) -> None:
    expected = _fill(queue_url)
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, queue_url, f"proc{i}", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        go.touch()
        outputs = [child.communicate(timeout=90) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, (_, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr
    per_process = [out.split() for out, _ in outputs]
    everything = [sys_id for ids in per_process for sys_id in ids]
    assert len(everything) == len(set(everything)) == RECORDS
    assert set(everything) == expected
    assert all(per_process), "one process got nothing: the claims never overlapped"
    _check_claim_records(queue_url, expected)
