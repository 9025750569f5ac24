"""Where each value of a JSON document is in its text, so that one value can be rewritten
in place and every other byte kept: the json module gives values, not places.

Reads a text json.loads accepts (check with it first); the values themselves are read
by json's own decoder. Touches nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


@dataclass
class Node:
    start: int  # the offset of the value's first character
    end: int  # the offset after its last
    value: Any = None  # a scalar's value (containers: None; read them with json.loads)
    members: dict[str, Node] = field(default_factory=dict)  # an object's, by key
    elements: list[Node] = field(default_factory=list)  # an array's
    keys: dict[str, int] = field(default_factory=dict)  # where each member's key starts


def parse(text: str, at: int = 0) -> Node:
    """The value that starts at `at` (after spaces), with the places of all it holds."""
    at = _SPACE.match(text, at).end()
    opening = text[at : at + 1]
    if opening == "{":
        node, at = Node(at, at), _SPACE.match(text, at + 1).end()
        while text[at] != "}":
            key, after = json.decoder.scanstring(text, at + 1)
            node.keys[key] = at
            colon = _SPACE.match(text, after).end()
            node.members[key] = member = parse(text, colon + 1)
            at = _SPACE.match(text, member.end).end()
            at = _SPACE.match(text, at + 1).end() if text[at] == "," else at
        node.end = at + 1
        return node
    if opening == "[":
        node, at = Node(at, at), _SPACE.match(text, at + 1).end()
        while text[at] != "]":
            node.elements.append(element := parse(text, at))
            at = _SPACE.match(text, element.end).end()
            at = _SPACE.match(text, at + 1).end() if text[at] == "," else at
        node.end = at + 1
        return node
    value, end = _DECODER.raw_decode(text, at)
    return Node(at, end, value)


def line_of(text: str, offset: int) -> int:
    """The 1-based line of an offset."""
    return text.count("\n", 0, offset) + 1
