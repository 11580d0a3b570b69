"""The ECC payload codec: pure functions between XML payload text and typed values (docs/ecc-reference.md section 2).

Parsing is hardened (defusedxml: no DTDs, no entities, no external references, a size
limit); anything wrong raises ``PayloadError`` with a one-line message, never a traceback.
"""

from __future__ import annotations

import functools
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from midprobe.capabilities.errors import PayloadError
from midprobe.probes.xml_encode import NOT_XML_CHAR, xml_safe_text
from midprobe.runner.ecc.record import ECC_PAYLOAD_CAP, QUEUE_PROCESSING_TOPIC, EccRecord

# An XML element or attribute name (a practical subset of the XML Name production).
_XML_NAME: Final = re.compile(r"[^\W\d][\w.\-]*(?::[^\W\d][\w.\-]*)?")


#: Deepest element nesting a payload may have (ours nest four deep; nmap results about eight).
MAX_PAYLOAD_DEPTH: Final = 64
#: Most elements a payload may hold; checked while parsing, so a hostile payload is refused
#: before its tree takes memory (a big discovery result holds a few tens of thousands).
MAX_PAYLOAD_ELEMENTS: Final = 500_000
#: Most ``<`` plain markup may hold and still take the fast path (parsed whole, its depth checked
#: after): a hostile deep one of this size costs about 5 ms to refuse that way; a longer text is
#: refused as it is parsed (0.5 ms for 400,000 openings 200,000 deep, against 90 ms built whole).
#: A port scan's page of 256 hosts holds a few thousand.
FAST_PATH_OPENINGS: Final = 20_000

#: Echoed before the output's own parameters in a result's ``<parameters>`` block, in this order.
ECHOED_FIELDS: Final[tuple[str, ...]] = (
    "topic",
    "sys_id",
    "agent",
    "name",
    "source",
    "priority",
    "sequence",
    "agent_correlator",
)


class Parameter(NamedTuple):
    """One ``<parameter name=".." value=".."/>`` (a named pair: a result echoes a dozen, made in a
    tenth of the time a frozen dataclass takes)."""

    name: str
    value: str


@dataclass(frozen=True)
class ParametersPayload:
    """An output payload with root ``<parameters>`` (names are unique)."""

    parameters: tuple[Parameter, ...] = ()

    def as_dict(self) -> dict[str, str]:
        return {parameter.name: parameter.value for parameter in self.parameters}

    def get(self, name: str, default: str | None = None) -> str | None:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter.value
        return default


@dataclass(frozen=True)
class ProbeRequest:
    """One probe of a MultiProbe: ``<probe topic=".." name=".."><parameters>..</parameters></probe>``."""

    topic: str
    name: str = ""
    parameters: tuple[Parameter, ...] = ()

    def as_dict(self) -> dict[str, str]:
        return {parameter.name: parameter.value for parameter in self.parameters}


@dataclass(frozen=True)
class MultiProbePayload:
    """An output payload with root ``<probes>``: several probes run under one login (our layout).

    ``<probes><parameters>shared</parameters><probe topic=".." name=".."><parameters>..
    </parameters></probe>...</probes>``; the shared block is optional.
    """

    probes: tuple[ProbeRequest, ...]
    parameters: tuple[Parameter, ...] = ()


@dataclass(frozen=True, eq=False)
class ResultsPayload:
    """An input payload (root ``<results>``): findings plus the request's parameters echoed back.

    ``results`` holds every child element other than ``<parameters>`` (normally the
    ``<result>`` elements), in document order. ``parameters`` is the echoed block as a
    sequence (names may repeat: the output's fields come first, then its parameters).
    """

    results: tuple[ET.Element, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    probe_time_ms: int | None = None
    result_code: int | None = None
    error: str | None = None
    #: Which page of its output's result this is (1 when it comes in one piece) and whether it is the last.
    page: int = 1
    last_page: bool = True

    @property
    def skips_sensor(self) -> bool:
        """True when the echoed ``skip_sensor`` parameter says no sensor should process this input."""
        return (self.echoed(SKIP_SENSOR_PARAMETER) or "").strip().lower() == "true"

    def echoed(self, name: str) -> str | None:
        """The first echoed value named ``name`` (an output field wins over a parameter of that name)."""
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter.value
        return None


OutputPayload = ParametersPayload | MultiProbePayload | ResultsPayload

#: An input whose echoed parameters hold ``skip_sensor=true`` is left alone by every sensor
#: (docs/ecc-reference.md section 6); on an output, the agent echoes it into the answer.
SKIP_SENSOR_PARAMETER: Final = "skip_sensor"
#: Attributes of a result's root marking a page of a multi-page result (our choice of names).
PAGE_ATTRIBUTE: Final = "page"
LAST_PAGE_ATTRIBUTE: Final = "last_page"
ParameterInput = Mapping[str, str] | Iterable[Parameter] | Iterable[tuple[str, str]]


# -- hardened parsing --------------------------------------------------------------------------


def payload_size(text: str | bytes) -> int:
    """Size in bytes as stored (UTF-8 for text)."""
    if isinstance(text, bytes):
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


class _PayloadTooComplex(Exception):
    """Raised from inside the parser when a limit is passed (translated in ``parse_xml``)."""


class _BoundedTreeBuilder(ET.TreeBuilder):
    """A tree builder that stops the parse as soon as the payload is too deep or has too many elements."""

    def __init__(self, max_depth: int, max_elements: int) -> None:
        super().__init__()
        self._max_depth = max_depth
        self._max_elements = max_elements
        self._depth = 0
        self._elements = 0

    def start(self, tag: str, attrs: dict[str, str], /) -> ET.Element:
        self._depth += 1
        self._elements += 1
        if self._depth > self._max_depth:
            raise _PayloadTooComplex(f"payload nests elements over {self._max_depth} deep")
        if self._elements > self._max_elements:
            raise _PayloadTooComplex(f"payload holds over {self._max_elements:,} elements")
        return super().start(tag, attrs)

    def end(self, tag: str, /) -> ET.Element:
        self._depth -= 1
        return super().end(tag)


def _plain_markup(text: str, max_elements: int) -> bool:
    """Whether ``text`` may take the fast path (text only: the encoding of bytes could hide markup
    from a search): no ``<!`` (so no DTD, hence no entity declarations or external references;
    comments and CDATA, rare, go the guarded way too) and at most ``max_elements`` ``<`` (each
    element starts with one, so the element count cannot pass the limit)."""
    return "<!" not in text and text.count("<") <= max_elements


def _parse_guarded(text: str | bytes, max_depth: int, max_elements: int) -> ET.Element:
    """Parse with defusedxml (DTDs, entities and external references refused) and a tree builder
    that stops the parse as soon as a limit is passed."""
    parser = DefusedXMLParser(
        target=_BoundedTreeBuilder(max_depth, max_elements),
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    parser.feed(text)
    root: ET.Element = parser.close()
    return root


def _parse_plain(text: str) -> ET.Element:
    """Parse markup :func:`_plain_markup` allowed with expat and the C tree builder (no Python call
    per element: a page of a big scan reads twice as fast as through the guarded parser)."""
    parser = ET.XMLParser()  # noqa: S314 - only text with no DTD and bounded elements gets here
    parser.feed(text)
    root: ET.Element = parser.close()
    return root


def _shallow(root: ET.Element, max_depth: int) -> ET.Element:
    """``root``, unless its elements nest deeper than ``max_depth`` (checked without recursion; the
    element count is already bounded, so a deep tree took no more memory than a flat one)."""
    level: list[ET.Element] = [root]
    depth = 1
    while level:
        if depth > max_depth:
            raise _PayloadTooComplex(f"payload nests elements over {max_depth} deep")
        level = [child for element in level for child in element]
        depth += 1
    return root


def parse_xml(
    text: str | bytes,
    *,
    max_bytes: int = ECC_PAYLOAD_CAP,
    max_depth: int = MAX_PAYLOAD_DEPTH,
    max_elements: int = MAX_PAYLOAD_ELEMENTS,
) -> ET.Element:
    """Parse untrusted payload XML: no DTD, no entities, no external references, bounded size and shape.

    Size is checked before parsing and depth and element count while parsing, so a
    hostile payload is refused before its tree is built. Text with no ``<!`` and no more ``<`` than
    the element limit and :data:`FAST_PATH_OPENINGS` cannot declare anything or pass that limit:
    it is parsed by expat with the C tree builder and its depth checked after (:func:`_plain_markup`:
    a deep one of that size is built, then refused, in a few ms); the rest goes through defusedxml
    with a counting tree builder. Every failure is ``PayloadError``.
    """
    if not isinstance(text, str | bytes):
        raise PayloadError(f"payload must be text, not {type(text).__name__}")
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and payload_size(text) > max_bytes):
        raise PayloadError(f"payload is {payload_size(text):,} bytes, over the {max_bytes:,}-byte limit")
    if not text.strip():
        raise PayloadError("payload is empty")
    try:
        if isinstance(text, str) and _plain_markup(text, min(max_elements, FAST_PATH_OPENINGS)):
            return _shallow(_parse_plain(text), max_depth)
        return _parse_guarded(text, max_depth, max_elements)
    except _PayloadTooComplex as error:
        raise PayloadError(str(error)) from None
    except DTDForbidden:
        raise PayloadError("payload declares a DTD, which is not allowed") from None
    except EntitiesForbidden as error:
        raise PayloadError(f"payload declares entity {error.name!r}, which is not allowed") from None
    except ExternalReferenceForbidden:
        raise PayloadError("payload refers to an external resource, which is not allowed") from None
    except DefusedXmlException as error:
        raise PayloadError(f"payload uses a forbidden XML feature ({type(error).__name__})") from None
    except ET.ParseError as error:
        raise PayloadError(f"payload is not well-formed XML: {_one_line(str(error))}") from None
    except LookupError as error:  # bytes declaring an encoding Python does not know
        raise PayloadError(f"payload declares an unknown encoding: {_one_line(str(error))}") from None
    except (ValueError, UnicodeError) as error:  # e.g. a lone surrogate in the text
        raise PayloadError(f"payload cannot be read as XML: {_one_line(str(error))}") from None
    except RecursionError:
        raise PayloadError("payload nests too deep to read") from None


def _serialise(root: ET.Element) -> str:
    """Unicode XML text in ServiceNow's shape (``<parameter .../>``, no space before ``/>``).

    What ``ET.tostring(root, encoding="unicode")`` writes, except that an empty element ends
    ``/>`` and a CR in text is written ``&#13;`` (ElementTree leaves it raw, which a parser
    reads back as LF; in attribute values it already writes ``&#13;``).
    """
    parts: list[str] = []
    _write_element(parts, root, sanitise=False)
    return "".join(parts)


#: What text and attribute values are escaped with ("&" first: the others' entities hold one).
_TEXT_ESCAPES: Final = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;"))
_ATTRIBUTE_ESCAPES: Final = (*_TEXT_ESCAPES, ('"', "&quot;"), ("\n", "&#10;"), ("\t", "&#09;"))


#: Any character one of the escapes replaces (most values hold none: one search, not seven).
_SPECIAL: Final = re.compile('[&<>"\r\n\t]')
#: Any character that is not plain: one XML cannot carry, or one an escape replaces. A value with
#: none (most) is checked and escaped by this one search.
_NOT_PLAIN: Final = re.compile(
    '[\x00-\x1f"&<>\ud800-\udfff\ufffe\uffff]'  # (see NOT_XML_CHAR: the few ranges, not the complement)
)


def _escaped(text: str, escapes: tuple[tuple[str, str], ...]) -> str:
    if _SPECIAL.search(text) is None:
        return text
    for character, entity in escapes:
        if character in text:
            text = text.replace(character, entity)
    return text


def _escape_text(text: str) -> str:
    return _escaped(text, _TEXT_ESCAPES)


def _escape_attribute(text: str) -> str:
    return _escaped(text, _ATTRIBUTE_ESCAPES)


#: References to an element of one parent while it is written (see ``_write_element``).
_UNSHARED_REFERENCES: Final = 3


def _write_element(parts: list[str], root: ET.Element, *, sanitise: bool) -> None:
    """Append the XML of ``root`` (and its subtree) to ``parts``, without recursion.

    With ``sanitise`` (elements a probe made): names must be XML names (``PayloadError``
    otherwise, as must comments and processing instructions), characters XML cannot carry
    in values and text become U+FFFD, and the root's tail is left out.
    """
    stack: list[ET.Element | str] = [root]
    #: The XML of each shared childless element written so far, by identity: an element of many
    #: parents (a port scan's ``<scanner>`` of one port and outcome) is checked and written once.
    #: Shared means referred to from more than its parent, ``item`` and ``getrefcount``'s argument
    #: (a hint only: an element counted wrongly is written in full, the same text).
    written: dict[int, str] = {}
    refcount = sys.getrefcount
    while stack:
        item = stack.pop()
        if isinstance(item, str):  # the end tag (and tail) of an element whose children are written
            parts.append(item)
            continue
        shared_leaf = refcount(item) > _UNSHARED_REFERENCES and not len(item) and item is not root
        if shared_leaf:
            known = written.get(id(item))
            if known is not None:
                parts.append(known)
                continue
            begin = len(parts)
        tag = item.tag
        if sanitise:
            if not isinstance(tag, str):
                raise PayloadError("results may not hold comments or processing instructions")
            _check_name(tag, "element name")
        parts.append("<" + tag)
        for key, value in item.attrib.items():
            if sanitise:
                _check_name(key, f"attribute name on <{tag}>")
                if type(value) is str and _NOT_PLAIN.search(value) is None:  # most: as it is
                    parts.append(f' {key}="{value}"')
                    continue
                value = _safe(value)
            parts.append(f' {key}="{_escape_attribute(value)}"')
        text, tail = item.text, item.tail
        if sanitise:
            text = xml_safe_text(text) if text is not None else None
            tail = xml_safe_text(tail) if tail is not None and item is not root else None
        end = _escape_text(tail) if tail else ""
        if text or len(item):
            parts.append(">" + _escape_text(text) if text else ">")
            stack.append(f"</{tag}>{end}")
            stack.extend(reversed(item))
        else:
            parts.append("/>" + end)
        if shared_leaf:
            written[id(item)] = "".join(parts[begin:])


def _safe(value: object) -> str:
    """A probe's attribute value as text XML can carry (``str`` of it, U+FFFD for what it cannot)."""
    return xml_safe_text(str(value))


def _one_line(message: str, limit: int = 200) -> str:
    flat = " ".join(message.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# -- parameters --------------------------------------------------------------------------------


def to_parameters(parameters: ParameterInput) -> tuple[Parameter, ...]:
    """Normalise a mapping, (name, value) pairs or ``Parameter`` objects into ``Parameter`` objects."""
    if isinstance(parameters, Mapping):
        items: Iterable[Parameter | tuple[str, str]] = parameters.items()
    else:
        items = parameters
    normalised: list[Parameter] = []
    for item in items:
        if isinstance(item, Parameter):
            normalised.append(item)
        else:
            name, value = item
            normalised.append(Parameter(name, value))
    return tuple(normalised)


def _check_parameter(parameter: Parameter) -> None:
    if not isinstance(parameter.name, str) or not isinstance(parameter.value, str):
        raise PayloadError(f"parameter {parameter.name!r}: name and value must be strings")
    if not parameter.name:
        raise PayloadError("a parameter has an empty name")
    for what, text in (("name", parameter.name), ("value", parameter.value)):
        bad = NOT_XML_CHAR.search(text)
        if bad is not None:
            raise PayloadError(
                f"parameter {parameter.name!r}: {what} holds character U+{ord(bad.group()):04X}, "
                "which XML cannot carry"
            )


def _parameters_element(parameters: Sequence[Parameter], *, unique: bool) -> ET.Element:
    element = ET.Element("parameters")
    for parameter in _checked_parameters(parameters, unique=unique):
        ET.SubElement(element, "parameter", name=parameter.name, value=parameter.value)
    return element


def _checked_parameters(parameters: Sequence[Parameter], *, unique: bool) -> Sequence[Parameter]:
    seen: set[str] = set()
    for parameter in parameters:
        _check_parameter(parameter)
        if unique:
            if parameter.name in seen:
                raise PayloadError(f"parameter {parameter.name!r} is given twice")
            seen.add(parameter.name)
    return parameters


def _write_parameters(parts: list[str], parameters: Sequence[Parameter], *, unique: bool) -> None:
    """Append ``<parameters><parameter name=".." value=".."/>...</parameters>`` to ``parts``."""
    if not parameters:
        parts.append("<parameters/>")
        return
    seen: set[str] = set()
    parts.append("<parameters>")
    for parameter in parameters:
        name, value = parameter.name, parameter.value
        # Plain text (most): valid and written as it is, after one search each.
        if not (
            type(name) is str
            and type(value) is str
            and name
            and _NOT_PLAIN.search(name) is None
            and _NOT_PLAIN.search(value) is None
        ):
            _check_parameter(parameter)
            name, value = _escape_attribute(name), _escape_attribute(value)
        if unique:
            if parameter.name in seen:
                raise PayloadError(f"parameter {parameter.name!r} is given twice")
            seen.add(parameter.name)
        parts.append(f'<parameter name="{name}" value="{value}"/>')
    parts.append("</parameters>")


def _read_parameters(element: ET.Element, *, unique: bool) -> tuple[Parameter, ...]:
    parameters: list[Parameter] = []
    seen: set[str] = set()
    for child in element:
        if child.tag != "parameter":
            raise PayloadError(f"unexpected element <{child.tag}> in <parameters> (only <parameter>)")
        name = child.get("name")
        if not name:
            raise PayloadError("a <parameter> has no name")
        if unique:
            if name in seen:
                raise PayloadError(f"parameter {name!r} is given twice")
            seen.add(name)
        parameters.append(Parameter(name, child.get("value", "")))
    return tuple(parameters)


# -- output payloads ---------------------------------------------------------------------------


def encode_output_payload(parameters: ParameterInput) -> str:
    """``<parameters><parameter name=".." value=".."/>...</parameters>`` (names unique, order kept)."""
    parts: list[str] = []
    _write_parameters(parts, to_parameters(parameters), unique=True)
    return "".join(parts)


def encode_multiprobe_payload(probes: Sequence[ProbeRequest], parameters: ParameterInput = ()) -> str:
    """A MultiProbe output payload (root ``<probes>``, see :class:`MultiProbePayload`)."""
    if not probes:
        raise PayloadError("a MultiProbe needs at least one probe")
    root = ET.Element("probes")
    shared = to_parameters(parameters)
    if shared:
        root.append(_parameters_element(shared, unique=True))
    for probe in probes:
        if not probe.topic:
            raise PayloadError("a probe of a MultiProbe has no topic")
        for label, text in (("topic", probe.topic), ("name", probe.name)):
            if NOT_XML_CHAR.search(text):
                raise PayloadError(f"probe {label} {text!r} holds a character XML cannot carry")
        attributes = {"topic": probe.topic}
        if probe.name:
            attributes["name"] = probe.name
        element = ET.SubElement(root, "probe", attributes)
        element.append(_parameters_element(probe.parameters, unique=True))
    return _serialise(root)


#: Request payloads up to this many characters are remembered once decoded (``_decoded_request``).
CACHED_REQUEST_CHARS: Final = 4096
#: How many: requests of one discovery often carry the same parameters (a no-op one, none at all).
CACHED_REQUESTS: Final = 256


def decode_output_payload(text: str | bytes, *, max_bytes: int = ECC_PAYLOAD_CAP) -> OutputPayload:
    """Decode an output payload: root ``parameters``, ``probes`` (MultiProbe) or ``results``."""
    if isinstance(text, str) and len(text) <= CACHED_REQUEST_CHARS and max_bytes >= ECC_PAYLOAD_CAP:
        request = _decoded_request(text)
        if request is not None:
            return request
    return _decode_output_payload(text, max_bytes)


@functools.lru_cache(maxsize=CACHED_REQUESTS)
def _decoded_request(text: str) -> ParametersPayload | MultiProbePayload | None:
    """A small ``<parameters>`` or ``<probes>`` payload decoded (immutable: one value serves every
    caller); ``None`` for a ``<results>`` one, whose elements a caller may change. A payload that
    does not decode raises, and is not remembered."""
    decoded = _decode_output_payload(text, ECC_PAYLOAD_CAP)
    return None if isinstance(decoded, ResultsPayload) else decoded


def _decode_output_payload(text: str | bytes, max_bytes: int) -> OutputPayload:
    root = parse_xml(text, max_bytes=max_bytes)
    if root.tag == "parameters":
        return ParametersPayload(_read_parameters(root, unique=True))
    if root.tag == "probes":
        return _read_multiprobe(root)
    if root.tag == "results":
        return _read_results(root)
    raise PayloadError(f"unexpected payload root <{root.tag}> (expected parameters, probes or results)")


def decode_parameters(text: str | bytes, *, max_bytes: int = ECC_PAYLOAD_CAP) -> dict[str, str]:
    """The parameters of a ``<parameters>`` output payload as a dict (an empty payload: none)."""
    if isinstance(text, str | bytes) and not text.strip():
        return {}
    decoded = decode_output_payload(text, max_bytes=max_bytes)
    if not isinstance(decoded, ParametersPayload):
        root = "probes" if isinstance(decoded, MultiProbePayload) else "results"
        raise PayloadError(f"expected a <parameters> payload, got <{root}>")
    return decoded.as_dict()


def _read_multiprobe(root: ET.Element) -> MultiProbePayload:
    shared: tuple[Parameter, ...] = ()
    probes: list[ProbeRequest] = []
    seen_shared = False
    for child in root:
        if child.tag == "parameters":
            if seen_shared:
                raise PayloadError("<probes> has more than one shared <parameters> block")
            seen_shared = True
            shared = _read_parameters(child, unique=True)
        elif child.tag == "probe":
            topic = child.get("topic")
            if not topic:
                raise PayloadError("a <probe> has no topic")
            blocks = list(child)
            if any(block.tag != "parameters" for block in blocks) or len(blocks) > 1:
                raise PayloadError(f"<probe topic={topic!r}> may only hold one <parameters> block")
            parameters = _read_parameters(blocks[0], unique=True) if blocks else ()
            probes.append(ProbeRequest(topic=topic, name=child.get("name", ""), parameters=parameters))
        else:
            raise PayloadError(f"unexpected element <{child.tag}> in <probes>")
    if not probes:
        raise PayloadError("<probes> holds no <probe>")
    return MultiProbePayload(probes=tuple(probes), parameters=shared)


# -- input payloads ----------------------------------------------------------------------------


def echo_parameters(output: EccRecord, parameters: ParameterInput) -> tuple[Parameter, ...]:
    """What a result echoes: every field of the output (``ECHOED_FIELDS``), then its parameters.

    Characters XML cannot carry become U+FFFD: an echo must never make a result unwritable.
    """
    fields = tuple(Parameter(name, xml_safe_text(str(getattr(output, name)))) for name in ECHOED_FIELDS)
    echoed = tuple(
        Parameter(xml_safe_text(parameter.name), xml_safe_text(parameter.value))
        for parameter in to_parameters(parameters)
    )
    return fields + echoed


def encode_input_payload(
    results: Sequence[ET.Element],
    *,
    echoed: Sequence[Parameter] = (),
    probe_time_ms: int,
    error: str | None = None,
    result_code: int | None = None,
    page: tuple[int, bool] | None = None,
) -> str:
    """``<results probe_time=".." result_code=".." [error=".."]>`` + ``results`` + ``<parameters>``.

    ``page`` = (number, last) marks one page of a multi-page result
    (``page="N" last_page="true|false"`` on the root); without it the result is in one piece.

    ``echoed`` is normally ``echo_parameters(output, output_parameters)``.
    ``result_code`` defaults to ``0`` without ``error`` and ``1`` with one. Text and
    attribute values in ``results`` holding characters XML cannot carry (control
    characters) get U+FFFD in their place; element or attribute names that are not XML
    names raise ``PayloadError``. The given elements are not modified.
    """
    if isinstance(probe_time_ms, bool) or not isinstance(probe_time_ms, int) or probe_time_ms < 0:
        raise PayloadError(
            f"probe_time must be a non-negative integer of milliseconds, not {probe_time_ms!r}"
        )
    code = result_code if result_code is not None else (1 if error else 0)
    parts = [f'<results probe_time="{probe_time_ms}" result_code="{_escape_attribute(str(code))}"']
    if error:
        parts.append(f' error="{_escape_attribute(xml_safe_text(error))}"')
    if page is not None:
        number, last = page
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise PayloadError(f"page must be a positive integer, not {number!r}")
        parts.append(f' {PAGE_ATTRIBUTE}="{number}" {LAST_PAGE_ATTRIBUTE}="{"true" if last else "false"}"')
    parts.append(">")
    for element in results:
        if not isinstance(element, ET.Element):
            raise PayloadError(f"a result must be an XML element, not {type(element).__name__}")
        _write_element(parts, element, sanitise=True)
    _write_parameters(parts, list(echoed), unique=False)
    parts.append("</results>")
    return "".join(parts)


def decode_input_payload(text: str | bytes, *, max_bytes: int = ECC_PAYLOAD_CAP) -> ResultsPayload:
    """Decode an input payload (root ``<results>``)."""
    root = parse_xml(text, max_bytes=max_bytes)
    if root.tag != "results":
        raise PayloadError(f"unexpected input payload root <{root.tag}> (expected results)")
    return _read_results(root)


def _read_results(root: ET.Element) -> ResultsPayload:
    echoed: tuple[Parameter, ...] = ()
    results: list[ET.Element] = []
    seen_parameters = False
    for child in root:
        if child.tag == "parameters":
            if seen_parameters:
                raise PayloadError("<results> has more than one <parameters> block")
            seen_parameters = True
            echoed = _read_parameters(child, unique=False)
        else:
            results.append(child)
    number, last = _page_of(root.attrib)
    return ResultsPayload(
        results=tuple(results),
        parameters=echoed,
        probe_time_ms=_int_attribute(root, "probe_time"),
        result_code=_int_attribute(root, "result_code"),
        error=root.get("error"),
        page=number,
        last_page=last,
    )


def _page_of(attributes: Mapping[str, str]) -> tuple[int, bool]:
    raw_page, raw_last = attributes.get(PAGE_ATTRIBUTE), attributes.get(LAST_PAGE_ATTRIBUTE)
    if raw_page is None and raw_last is None:
        return 1, True
    if raw_page is None or not raw_page.isdecimal() or int(raw_page) < 1:
        raise PayloadError(f"<results> attribute {PAGE_ATTRIBUTE}={raw_page!r} is not a positive integer")
    if raw_last not in ("true", "false"):
        raise PayloadError(f"<results> attribute {LAST_PAGE_ATTRIBUTE}={raw_last!r} is not true or false")
    return int(raw_page), raw_last == "true"


# The start tag of a <results> root (after an optional XML declaration) and its attributes.
_RESULTS_START: Final = re.compile(
    r"\A\s*(?:<\?xml[^>]*\?>\s*)?<results((?:\s+[^\s=>/]+\s*=\s*\"[^\"]*\")*)\s*/?>"
)
_ATTRIBUTE: Final = re.compile(r'([^\s=>/]+)\s*=\s*"([^"]*)"')


def result_page(text: str) -> tuple[int, bool]:
    """(page number, last page?) of an input payload, read from its root tag alone (no parse).

    A payload without ``page``/``last_page`` (or not a ``<results>`` payload) is one piece:
    ``(1, True)``. A malformed marker raises ``PayloadError``. The queue calls this for every
    result it stores, so it reads only the start tag.
    """
    if "page" not in text:  # no page attribute can be there: most results, without a regex
        return 1, True
    match = _RESULTS_START.match(text)
    if match is None:
        return 1, True
    return _page_of(dict(_ATTRIBUTE.findall(match.group(1))))


def _int_attribute(element: ET.Element, name: str) -> int | None:
    raw = element.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise PayloadError(f"<{element.tag}> attribute {name}={raw!r} is not an integer") from None


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _is_xml_name(name):
        raise PayloadError(f"{what} {name!r} is not an XML name")


@functools.lru_cache(maxsize=4096)
def _is_xml_name(name: str) -> bool:
    """Whether ``name`` is an XML name (remembered: a probe's results use a few names again and again)."""
    return _XML_NAME.fullmatch(name) is not None


# -- queue.processing ----------------------------------------------------------------------------


def encode_queue_processing(sys_ids: Sequence[str]) -> str:
    """``<queue.processing output_message_count="N"><sys_id state="processing">ID</sys_id>...``."""
    root = ET.Element(QUEUE_PROCESSING_TOPIC, output_message_count=str(len(sys_ids)))
    for sys_id in sys_ids:
        ET.SubElement(root, "sys_id", state="processing").text = sys_id
    return _serialise(root)


def decode_queue_processing(text: str | bytes, *, max_bytes: int = ECC_PAYLOAD_CAP) -> tuple[str, ...]:
    """The sys_ids a ``queue.processing`` payload lists (its count must match)."""
    root = parse_xml(text, max_bytes=max_bytes)
    if root.tag != QUEUE_PROCESSING_TOPIC:
        raise PayloadError(f"unexpected root <{root.tag}> (expected {QUEUE_PROCESSING_TOPIC})")
    ids = tuple((child.text or "").strip() for child in root if child.tag == "sys_id")
    count = _int_attribute(root, "output_message_count")
    if count is not None and count != len(ids):
        raise PayloadError(f"output_message_count={count} but {len(ids)} sys_id elements")
    return ids


# -- display -----------------------------------------------------------------------------------


def pretty_payload(text: str, *, indent: str = "  ") -> str:
    """``text`` re-indented for people (``ecc show``); returned unchanged if it is not XML we can read."""
    try:
        root = parse_xml(text)
        ET.indent(root, space=indent)
        return _serialise(root)
    except (PayloadError, RecursionError):
        return text


__all__ = [
    "ECHOED_FIELDS",
    "LAST_PAGE_ATTRIBUTE",
    "MAX_PAYLOAD_DEPTH",
    "MAX_PAYLOAD_ELEMENTS",
    "PAGE_ATTRIBUTE",
    "SKIP_SENSOR_PARAMETER",
    "MultiProbePayload",
    "OutputPayload",
    "Parameter",
    "ParameterInput",
    "ParametersPayload",
    "ProbeRequest",
    "ResultsPayload",
    "decode_input_payload",
    "decode_output_payload",
    "decode_parameters",
    "decode_queue_processing",
    "echo_parameters",
    "encode_input_payload",
    "encode_multiprobe_payload",
    "encode_output_payload",
    "encode_queue_processing",
    "parse_xml",
    "payload_size",
    "pretty_payload",
    "result_page",
    "to_parameters",
    "xml_safe_text",
]
