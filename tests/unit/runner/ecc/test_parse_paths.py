"""``parse_xml``'s two ways of reading text: expat with the C tree builder for plain markup, and
defusedxml with a counting tree builder for the rest. Both must read the same tree or refuse the
same text; the fast way must never be taken by what only the guarded one may refuse."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midprobe.capabilities.errors import PayloadError
from midprobe.runner.ecc import payload as codec
from midprobe.runner.ecc.payload import MAX_PAYLOAD_DEPTH, parse_xml

#: Pieces of markup, good and bad, that random payloads are made of.
PIECES = (
    "<a>",
    "</a>",
    "<b x='1'>",
    "</b>",
    "<c/>",
    '<d y="&amp;&#65;"/>',
    "text",
    "&lt;",
    "&undefined;",
    "<?pi data?>",
    "<!-- note -->",
    "<![CDATA[<raw>]]>",
    "<",
    ">",
    '"',
    "\u00e9",
    "\x01",
)


def _shape(element: ET.Element) -> object:
    return (
        element.tag,
        sorted(element.attrib.items()),
        element.text,
        element.tail,
        [_shape(child) for child in element],
    )


def _outcome(read: object, text: str) -> object:
    try:
        return _shape(read(text))  # type: ignore[operator]
    except (ET.ParseError, ValueError, codec._PayloadTooComplex):
        return "refused"


def _guarded(text: str) -> ET.Element:
    return codec._parse_guarded(text, MAX_PAYLOAD_DEPTH, codec.MAX_PAYLOAD_ELEMENTS)


def _plain(text: str) -> ET.Element:
    return codec._shallow(codec._parse_plain(text), MAX_PAYLOAD_DEPTH)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=30))
def test_both_ways_read_plain_markup_alike(pieces: list[str]) -> None:
    text = "<results>" + "".join(pieces) + "</results>"
    if not codec._plain_markup(text, codec.MAX_PAYLOAD_ELEMENTS):
        return  # the guarded way only: nothing to compare
    assert _outcome(_plain, text) == _outcome(_guarded, text)


def test_a_shazzam_page_reads_the_same_both_ways() -> None:
    hosts = "".join(
        f'<host ip="198.18.0.{i}" alive="true"><scanner name="GenericTCP" port="22" result="open"/></host>'
        for i in range(50)
    )
    text = f'<results probe_time="3"><result engine="syn">{hosts}</result></results>'
    assert codec._plain_markup(text, codec.MAX_PAYLOAD_ELEMENTS)
    assert _shape(parse_xml(text)) == _shape(_guarded(text))


@pytest.mark.parametrize(
    "text",
    [
        '<!DOCTYPE r [<!ENTITY e "boom">]><r>&e;</r>',  # an entity declaration
        '<!DOCTYPE r SYSTEM "http://198.18.0.1/x.dtd"><r/>',  # an external reference
        "<r><!-- comment --></r>",
    ],
)
def test_declarations_and_comments_take_the_guarded_way(text: str) -> None:
    assert not codec._plain_markup(text, codec.MAX_PAYLOAD_ELEMENTS)


def test_a_dtd_is_refused_whatever_the_way() -> None:
    with pytest.raises(PayloadError, match="DTD"):
        parse_xml('<!DOCTYPE r [<!ENTITY e "boom">]><r>&e;</r>')


def test_more_openings_than_the_element_limit_take_the_guarded_way() -> None:
    text = "<r>" + "<c/>" * 10 + "</r>"  # 11 elements, 12 openings (the end tag's too)
    assert codec._plain_markup(text, 12)
    assert not codec._plain_markup(text, 11)
    assert len(parse_xml(text, max_elements=11)) == 10
    with pytest.raises(PayloadError, match="over 10 elements"):
        parse_xml(text, max_elements=10)


def test_bytes_take_the_guarded_way() -> None:
    # The encoding of bytes could hide a declaration from a text search (UTF-16 here).
    hostile = '<!DOCTYPE r [<!ENTITY e "boom">]><r>&e;</r>'.encode("utf-16")
    with pytest.raises(PayloadError):
        parse_xml(hostile)


def test_too_deep_plain_markup_is_refused_at_the_limit() -> None:
    depth = MAX_PAYLOAD_DEPTH
    assert parse_xml("<a>" * depth + "</a>" * depth).tag == "a"
    with pytest.raises(PayloadError, match=f"over {depth} deep"):
        parse_xml("<a>" * (depth + 1) + "</a>" * (depth + 1))
    # Deep, within what the fast way takes: read whole, refused after, no recursion limit hit.
    deep = codec.FAST_PATH_OPENINGS // 2
    assert codec._plain_markup("<a>" * deep + "</a>" * deep, codec.FAST_PATH_OPENINGS)
    with pytest.raises(PayloadError, match=f"over {depth} deep"):
        parse_xml("<a>" * deep + "</a>" * deep)
    # Deeper: refused as it is parsed, by the guarded way.
    deep = 100_000
    with pytest.raises(PayloadError, match=f"over {depth} deep"):
        parse_xml("<a>" * deep + "</a>" * deep)


def test_plain_markup_longer_than_the_fast_path_takes_is_refused_as_it_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hostile deep payload of many openings is not built whole before its depth is checked."""
    deep = codec.FAST_PATH_OPENINGS // 2 + 1  # one opening (and one end tag) over
    hostile = "<a>" * deep + "</a>" * deep

    def built_whole(text: str) -> ET.Element:
        raise AssertionError("parsed whole by the fast way")

    monkeypatch.setattr(codec, "_parse_plain", built_whole)
    with pytest.raises(PayloadError, match=f"over {MAX_PAYLOAD_DEPTH} deep"):
        parse_xml(hostile)
    flat = "<r>" + "<c/>" * (codec.FAST_PATH_OPENINGS + 1) + "</r>"
    assert len(parse_xml(flat)) == codec.FAST_PATH_OPENINGS + 1  # long but shallow: read the guarded way


def test_an_element_shared_by_many_parents_is_written_under_each() -> None:
    # A port scan's <scanner> of one port and outcome is one element in every host that has it.
    shared = ET.Element("scanner", port="22", result="open", note="bell\x07")
    hosts = ET.Element("result")
    for address in ("198.18.0.1", "198.18.0.2", "198.18.0.3"):
        host = ET.SubElement(hosts, "host", ip=address)
        host.append(shared)
        ET.SubElement(host, "scanner", port="80", result="refused")
    text = codec.encode_input_payload([hosts], probe_time_ms=1)
    read = codec.decode_input_payload(text).results[0]
    assert [h.get("ip") for h in read] == ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
    for host in read:
        assert [(s.get("port"), s.get("result")) for s in host] == [("22", "open"), ("80", "refused")]
        assert host[0].get("note") == "bell\ufffd"  # sanitised wherever it is written
