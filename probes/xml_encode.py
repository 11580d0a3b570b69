"""The XML building blocks the probes' encoders share (pure): flags, optional attributes, ``<scanner>``.

Beside ``params.py`` (which reads ECC parameters), this writes the ECC result side: one way to
spell a boolean, one way to leave out an attribute without a value, and the ``<scanner>`` element
Shazzam and BannerSniff both report per port (docs/shazzam.md, docs/banner.md).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Final

#: A character XML 1.0 cannot hold (outside ``#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] |
#: [#x10000-#x10FFFF]``), spelled as the few ranges it is: the complement of the allowed ranges
#: takes the regex compiler 8 ms (its Unicode-wide charset), this 1 ms, and both match the same.
NOT_XML_CHAR: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
#: What stands in for a character XML cannot carry.
REPLACEMENT_CHARACTER: Final = "\ufffd"


def xml_safe_text(text: str) -> str:
    """``text`` with every character XML cannot carry replaced by U+FFFD."""
    if text.isascii() and text.isprintable():  # most values: nothing XML cannot carry, no search
        return text
    return NOT_XML_CHAR.sub(REPLACEMENT_CHARACTER, text)


def flag(value: bool) -> str:
    """A boolean as ECC payloads write it: ``true`` / ``false``."""
    return "true" if value else "false"


def sub_element(
    parent: ET.Element, tag: str, text: str | None = None, **attributes: str | None
) -> ET.Element:
    """A child element carrying only the attributes that have a value, in the order given."""
    element = ET.SubElement(
        parent, tag, {key: value for key, value in attributes.items() if value is not None}
    )
    if text is not None:
        element.text = text
    return element


def new_scanner(
    *,
    name: str,
    port: int,
    portprobe: str,
    protocol: str,
    result: str,
    service: str,
    **extra: str | None,
) -> ET.Element:
    """One ``<scanner>`` (a scanner's outcome on one port), not yet in a parent; ``extra``
    attributes without a value are left out."""
    attributes = {
        "name": name,
        "port": str(port),
        "portprobe": portprobe,
        "protocol": protocol,
        "result": result,
        "service": service,
    }
    attributes.update((key, value) for key, value in extra.items() if value is not None)
    return ET.Element("scanner", attributes)


def scanner_element(
    parent: ET.Element,
    *,
    name: str,
    port: int,
    portprobe: str,
    protocol: str,
    result: str,
    service: str,
    **extra: str | None,
) -> ET.Element:
    """:func:`new_scanner`, appended to ``parent``."""
    element = new_scanner(
        name=name, port=port, portprobe=portprobe, protocol=protocol, result=result, service=service, **extra
    )
    parent.append(element)
    return element
