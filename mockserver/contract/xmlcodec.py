"""XML <-> JSON-shaped data, driven by the spec's schemas and their `xml` objects.

eGain accepts and answers XML as well as JSON. Rather than keep a second data
model, an XML document is turned into the same JSON-shaped value its schema
describes and validated by the same JSON Schema; answers are rendered the
other way. Parsing goes through defusedxml with DTDs, entities and external
references forbidden, so nothing is ever expanded or fetched.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring


class XmlMalformed(ValueError):
    """The bytes are not well-formed XML (or not UTF-8)."""


class XmlForbidden(ValueError):
    """The document declares a DTD or entities, or refers to external resources."""


class XmlMisshapen(ValueError):
    """Well-formed XML that does not follow the schema's XML mapping (e.g. an id sent as an element)."""


def parse(data: bytes) -> Element:
    """Parse untrusted bytes safely; no DTD, entity or external reference is allowed."""
    try:
        return fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise XmlForbidden(f"XML must not declare a DTD, entities or external references ({type(exc).__name__}).") from exc
    except ParseError as exc:
        raise XmlMalformed(f"Request body is not well-formed XML: {exc}.") from exc


def root_name(schema: dict) -> str | None:
    return schema.get("xml", {}).get("name")


def decode(data: bytes, schema: dict) -> Any:
    """Parse `data` and convert it into the JSON-shaped value `schema` describes.

    Elements or attributes the schema does not know are kept (as text) so that
    the schema's `additionalProperties: false` rejects them by name.
    """
    return _decode_root(parse(data), schema)


def _decode_root(element: Element, schema: dict) -> Any:
    expected = root_name(schema)
    tag = _local(element.tag)
    if expected is not None and tag != expected:
        raise XmlMalformed(f"The root element must be <{expected}>, not <{tag}>.")
    return _decode_element(element, schema)


class DocumentReader:
    """Decodes any XML document of the spec, choosing its schema by the root element.

    For judges that see a body without knowing its operation (openapi-core's
    media-type hook, schemathesis' deserializer); the exchange itself knows
    the schema and calls `decode` directly.
    """

    def __init__(self, schemas: dict[str, dict]):
        self._by_root = {root_name(s): s for s in schemas.values() if root_name(s)}

    def __call__(self, data: bytes) -> Any:
        root = parse(data)
        tag = _local(root.tag)
        if tag not in self._by_root:
            raise XmlMisshapen(f"no schema of the spec has the XML root element <{tag}>")
        return _decode_root(root, self._by_root[tag])


def encode(value: Any, schema: dict, name: str | None = None) -> bytes:
    """Render a JSON-shaped value as an XML document following `schema`."""
    root = Element(name or root_name(schema) or "root")
    _fill(root, value, schema)
    return tostring(root, encoding="utf-8", xml_declaration=True)


# ---------------------------------------------------------------- decoding


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml(schema: dict) -> dict:
    return schema.get("xml") or {}


def _decode_element(element: Element, schema: dict) -> Any:
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return _decode_object(element, schema)
    if kind == "array":
        items = schema.get("items", {})
        return [_decode_element(child, items) for child in element]
    if len(element):
        raise XmlMisshapen(f"<{_local(element.tag)}> must hold text only, not child elements.")
    return _scalar(element.text or "", schema)


def _decode_object(element: Element, schema: dict) -> dict:
    result: dict[str, Any] = {}
    known_attributes: set[str] = set()
    known_children: set[str] = set()
    for prop, prop_schema in schema.get("properties", {}).items():
        xml = _xml(prop_schema)
        name = xml.get("name", prop)
        if xml.get("attribute"):
            known_attributes.add(name)
            if name in element.attrib:
                result[prop] = _scalar(element.attrib[name], prop_schema)
            continue
        if prop_schema.get("type") == "array":
            items = prop_schema.get("items", {})
            if xml.get("wrapped"):
                known_children.add(name)
                wrapper = [c for c in element if _local(c.tag) == name]
                if wrapper:
                    item_name = _xml(items).get("name", name)
                    result[prop] = [_decode_element(c, items) for c in wrapper[0] if _local(c.tag) == item_name]
            else:
                item_name = _xml(items).get("name", name)
                known_children.add(item_name)
                found = [c for c in element if _local(c.tag) == item_name]
                if found:
                    result[prop] = [_decode_element(c, items) for c in found]
            continue
        known_children.add(name)
        found = [c for c in element if _local(c.tag) == name]
        if len(found) == 1:
            result[prop] = _decode_element(found[0], prop_schema)
        elif found:
            # A repeated element where one is expected: keep them all so the
            # schema reports a type error naming the field.
            result[prop] = [_decode_element(c, prop_schema) for c in found]
    for attr, text in element.attrib.items():
        if _local(attr) not in known_attributes:
            result.setdefault(_local(attr), text)
    for child in element:
        tag = _local(child.tag)
        if tag in known_attributes and tag not in known_children:
            raise XmlMisshapen(f"'{tag}' must be an attribute of <{_local(element.tag)}>, not a child element.")
        if tag not in known_children:
            # Unknown elements are kept flat (their text only): never recurse
            # into structure the schema does not describe.
            result.setdefault(tag, child.text or "")
    return result


def _scalar(text: str, schema: dict) -> Any:
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return text
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


# ---------------------------------------------------------------- encoding


def _fill(element: Element, value: Any, schema: dict) -> None:
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for prop, item in value.items():
            prop_schema = properties.get(prop, {})
            xml = _xml(prop_schema)
            name = str(xml.get("name", prop))  # a JSON key, or the name the schema gives it
            if xml.get("attribute"):
                element.set(name, _text(item))
            elif isinstance(item, list):
                items = prop_schema.get("items", {})
                item_name = _xml(items).get("name", name)
                parent = SubElement(element, name) if xml.get("wrapped") else element
                for entry in item:
                    _fill(SubElement(parent, item_name), entry, items)
            else:
                _fill(SubElement(element, name), item, prop_schema)
    elif isinstance(value, list):
        items = schema.get("items", {})
        for entry in value:
            _fill(SubElement(element, _xml(items).get("name", "item")), entry, items)
    else:
        element.text = _text(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
