"""Multi-page results (pure): a large input split into pages, and pages read back as one result.

A result listing many CIs (a Shazzam over a big batch: one ``<result>`` holding a ``<host>``
per address) goes to the instance as several inputs answering the same output, each with at
most ``max_items`` items and ``page="N" last_page="true|false"`` on its root, as ServiceNow
sends large discovery results in pages (docs/ecc-reference.md section 6). The items are the
children of the result's top-level elements; each page repeats the element around them (its
attributes) and the echoed parameters. :func:`merge_pages` gives a sensor the pages as one
payload again.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Final

from midprobe.capabilities.errors import ConfigError, PayloadError
from midprobe.runner.ecc.payload import ResultsPayload, decode_input_payload, encode_input_payload
from midprobe.runner.ecc.record import EccRecord, new_sequence, new_sys_id

DEFAULT_PAGE_ITEMS: Final = 500
"""Most CIs one page holds (ServiceNow's default for multi-page discovery results)."""
#: A request to a probe that can stream (``Shazzam``) may ask for its answer in pages as it comes:
#: a page at most this many milliseconds after the first item (or progress) it holds...
PAGE_WAIT_PARAMETER: Final = "page_wait_ms"
#: ... and of at most this many items (default: the agent's page size).
PAGE_ITEMS_PARAMETER: Final = "page_items"
#: A payload shorter than this many characters per allowed item cannot hold more items than
#: a page takes (an item is one element: tens of characters at least), so it is not parsed.
_MIN_ITEM_CHARS: Final = 16


def _items(results: Sequence[ET.Element]) -> list[tuple[int, ET.Element | None]]:
    """(index of the top-level element, one of its children or ``None`` for a childless one)."""
    items: list[tuple[int, ET.Element | None]] = []
    for index, element in enumerate(results):
        if len(element):
            items.extend((index, child) for child in element)
        else:
            items.append((index, None))
    return items


def split_pages(record: EccRecord, max_items: int = DEFAULT_PAGE_ITEMS) -> list[EccRecord]:
    """``record`` (an input) as pages of at most ``max_items`` items; ``[record]`` when it fits in one.

    Each page is a new record (own ``sys_id`` and ``sequence``), every other field as
    ``record``'s. An error result, or a payload that is not a readable ``<results>``, is never split.
    """
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
        raise ConfigError(f"{max_items!r} is not a positive number of items", field="page_items")
    if record.error_string or len(record.payload) <= max_items * _MIN_ITEM_CHARS:
        return [record]
    try:
        decoded = decode_input_payload(record.payload)
    except PayloadError:  # not ours to judge here: the queue stores it as it is
        return [record]
    items = _items(decoded.results)
    if len(items) <= max_items or decoded.error:
        return [record]
    chunks = [items[start : start + max_items] for start in range(0, len(items), max_items)]
    pages: list[EccRecord] = []
    for number, chunk in enumerate(chunks, start=1):
        shells: dict[int, ET.Element] = {}
        elements: list[ET.Element] = []
        for index, child in chunk:
            source = decoded.results[index]
            if child is None:
                elements.append(source)
                continue
            if index not in shells:
                shells[index] = ET.Element(source.tag, dict(source.attrib))
                shells[index].text = source.text
                elements.append(shells[index])
            shells[index].append(child)
        payload = encode_input_payload(
            elements,
            echoed=decoded.parameters,
            probe_time_ms=decoded.probe_time_ms or 0,
            result_code=decoded.result_code,
            page=(number, number == len(chunks)),
        )
        pages.append(record.with_changes(sys_id=new_sys_id(), sequence=new_sequence(), payload=payload))
    return pages


def merge_pages(pages: Sequence[ResultsPayload]) -> ResultsPayload:
    """The pages of one result (page order) read as one: every page's elements, the first's echo.

    ``error`` and ``result_code`` come from the first page that has an error, else the last page.
    """
    if not pages:
        raise ConfigError("no pages to merge", field="pages")
    if len(pages) == 1:
        return pages[0]
    failed = next((page for page in pages if page.error), pages[-1])
    return ResultsPayload(
        results=tuple(element for page in pages for element in page.results),
        parameters=pages[0].parameters,
        probe_time_ms=max((page.probe_time_ms or 0) for page in pages),
        result_code=failed.result_code,
        error=failed.error,
        page=1,
        last_page=True,
    )


__all__ = ["DEFAULT_PAGE_ITEMS", "PAGE_ITEMS_PARAMETER", "PAGE_WAIT_PARAMETER", "merge_pages", "split_pages"]
