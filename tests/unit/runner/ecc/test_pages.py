"""Multi-page results: a large input split into pages of at most N items, and read back whole."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from midprobe.capabilities.errors import ConfigError, PayloadError
from midprobe.runner.ecc.builders import new_input_record, new_output_record
from midprobe.runner.ecc.pages import merge_pages, split_pages
from midprobe.runner.ecc.payload import decode_input_payload, result_page
from midprobe.runner.ecc.record import EccRecord


def _shazzam_answer(hosts: int, error: str | None = None) -> tuple[str, EccRecord]:
    output = new_output_record(
        agent="lab1", topic="Shazzam", source="198.18.0.0/24", parameters={"ports": "22"}
    )
    result = ET.Element("result", engine="connect", hosts_alive=str(hosts))
    for index in range(hosts):
        ET.SubElement(result, "host", ip=f"198.18.0.{index + 1}", alive="true")
    return output.sys_id, new_input_record(
        output, agent="lab1", results=[result], probe_time_ms=9, error=error
    )


def test_a_result_over_the_page_size_is_split_and_merges_back_to_the_same_hosts() -> None:
    output_id, answer = _shazzam_answer(7)
    pages = split_pages(answer, 3)
    decoded = [decode_input_payload(page.payload) for page in pages]
    assert [result_page(page.payload) for page in pages] == [(1, False), (2, False), (3, True)]
    assert [len(list(page.results[0])) for page in decoded] == [3, 3, 1]
    assert {page.response_to for page in pages} == {output_id}
    assert len({page.sys_id for page in pages}) == 3
    assert all(
        page.echoed("ports") == "22" and page.results[0].get("engine") == "connect" for page in decoded
    )
    merged = merge_pages(decoded)
    assert [host.get("ip") for result in merged.results for host in result] == [
        f"198.18.0.{i}" for i in range(1, 8)
    ]


def test_a_result_that_fits_or_failed_is_one_piece() -> None:
    _, small = _shazzam_answer(3)
    assert split_pages(small, 3) == [small]
    _, failed = _shazzam_answer(9, error="timed out")
    assert split_pages(failed, 3) == [failed]
    assert result_page(small.payload) == (1, True)
    with pytest.raises(ConfigError, match="page_items"):
        split_pages(small, 0)


@pytest.mark.parametrize(
    ("payload", "page"),
    [
        ('<results probe_time="1" result_code="0"><result>no pages here</result></results>', (1, True)),
        # "page" in the body or the echo, not on the root: one piece all the same.
        ('<results probe_time="1"><result page="7">see page 2</result></results>', (1, True)),
        ('<?xml version="1.0"?>\n<results page="2" last_page="false"><result/></results>', (2, False)),
        ('<results error="a > b" page = "3" last_page="true"/>', (3, True)),
        ("<parameters/>", (1, True)),
    ],
)
def test_result_page_reads_the_marker_of_the_root_only(payload: str, page: tuple[int, bool]) -> None:
    assert result_page(payload) == page


@pytest.mark.parametrize("marker", ['page="0"', 'page="x" last_page="true"', 'page="2" last_page="yes"'])
def test_a_malformed_page_marker_is_refused(marker: str) -> None:
    with pytest.raises(PayloadError, match="page"):
        result_page(f"<results {marker}><result/></results>")
