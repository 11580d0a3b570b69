"""Structured logs: JSON lines with secrets redacted."""

from __future__ import annotations

import io
import json

from midprobe.runner.agent import logs


def test_log_lines_are_json_with_fields_and_no_secrets() -> None:
    stream = io.StringIO()
    logs.configure("debug", stream)
    log = logs.get_logger("midprobe.test")
    log.info(
        "connected",
        host="198.18.0.10",
        password="hunter2",
        snmp_community="public-secret",
        auth_key="k3y",
        queue="postgresql://mid:s3cret@db.example/ecc?sslmode=require&password=again",
    )
    log.debug("quiet detail", count=3)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["connected", "quiet detail"]
    first = lines[0]
    assert first["level"] == "info"
    assert first["logger"] == "midprobe.test"
    assert first["host"] == "198.18.0.10"
    assert first["password"] == first["snmp_community"] == first["auth_key"] == logs.REDACTED
    assert first["queue"] == "postgresql://mid:***@db.example/ecc?sslmode=require&password=***"
    text = stream.getvalue()
    for secret in ("hunter2", "public-secret", "k3y", "s3cret", "again"):
        assert secret not in text


def test_level_filters() -> None:
    stream = io.StringIO()
    logs.configure("warning", stream)
    log = logs.get_logger("midprobe.test")
    log.info("hidden")
    log.warning("shown", reason="x")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["shown"]
