"""Keeping secrets out of what batch-tasks keeps: logs, events, records, the terminal.

A secret is the value of an environment variable whose name looks like a key,
token or password, at least MIN_LENGTH characters long: shorter values (`3`,
`x11`, `true`) are not secrets but settings, and masking them would mask
ordinary words and numbers everywhere, so they are left as they are.

Each secret is masked (`***`) in every form an agent may print it in: as it is,
JSON-escaped (as Python, JavaScript, Rust and Go escape it), with CRLF line ends,
and, for a secret of several lines (a PEM key), each of its lines on its own.
Output is masked as a stream (`Redactor.stream()`): what may be the start of a
secret is held back until the next chunk says, so a secret split across chunks
or lines is still masked whole. A JSON line that escapes in some other way is
decoded and masked again before it is read (`Redactor.json_line`), and
`Redactor.text` masks any text before it is kept. The agent itself still gets
its whole environment. This module touches nothing but the data it is given.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.IGNORECASE)
MIN_LENGTH = 6  # shorter values are settings, not secrets (see above)
MASK = b"***"
GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}  # Go's encoding/json escapes these too


def secret_values(environ: Mapping[str, str]) -> set[str]:
    return {value for name, value in environ.items() if SECRET_NAME.search(name) and len(value) >= MIN_LENGTH}


def _encode(text: str) -> bytes:
    # Environment values that are not UTF-8 come as surrogate escapes: back to their bytes.
    return text.encode("utf-8", "surrogateescape")


def _forms(secret: str) -> set[str]:
    """Every form of one secret worth looking for."""
    forms = {secret, secret.replace("\n", "\r\n"), repr(secret)[1:-1]}  # repr: as `doit info` shows settings
    escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
    for candidate in (escaped, json.dumps(secret)[1:-1]):
        forms |= {candidate, candidate.replace("/", "\\/")}
        for character, escape in GO_ESCAPES.items():
            candidate = candidate.replace(character, escape)
        forms.add(candidate)
    if "\n" in secret:
        forms |= {line.strip("\r") for line in secret.split("\n")}
    return {form for form in forms if len(form) >= MIN_LENGTH}


class Redactor:
    def __init__(self, environ: Mapping[str, str], also: Iterable[str] = ()):
        """Masks the secrets of `environ`, and `also` these values whatever their names
        (the variables `pass_env` sends to remote workers)."""
        secrets = secret_values(environ) | {value for value in also if len(value) >= MIN_LENGTH}
        forms = {form for secret in secrets for form in _forms(secret)}
        # Longest first, so that a form containing another is masked whole.
        self._text_forms = sorted(forms, key=len, reverse=True)
        self.forms = [_encode(form) for form in self._text_forms]

    def __bool__(self) -> bool:
        return bool(self.forms)

    def __call__(self, data: bytes) -> bytes:
        """`data` with every secret, in every form, masked."""
        for form in self.forms:
            if form in data:
                data = data.replace(form, MASK)
        return data

    def text(self, text: str) -> str:
        """The same, for text already decoded (a reason, an event's text)."""
        for form in self._text_forms:
            if form in text:
                text = text.replace(form, MASK.decode())
        return text

    def value(self, value: Any) -> Any:
        """Every string in a JSON-like value masked (keys too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            return {self.value(key): self.value(item) for key, item in value.items()}
        return value

    def json_line(self, line: bytes) -> bytes:
        """A JSON line whose escapes may hide a secret (`\\u0074ok…`), decoded, masked and
        written again; any other line as it is. Only lines with a backslash can hide one."""
        if not self.forms or b"\\" not in line or line.lstrip()[:1] not in (b"{", b"["):
            return line
        try:
            value = json.loads(line)
        except ValueError:
            return line
        masked = self.value(value)
        if masked == value:
            return line
        try:
            return json.dumps(masked, ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate (`\\ud800`) the agent printed: kept escaped
            return json.dumps(masked).encode()

    def stream(self) -> "StreamRedactor":
        return StreamRedactor(self)


class MaskedText:
    """A text stream that writes what it is given masked: for a command whose every write is
    one whole value or line (doit's `info`)."""

    def __init__(self, stream, redactor: Redactor):
        self.stream, self.redactor = stream, redactor

    def write(self, text: str) -> int:
        return self.stream.write(self.redactor.text(text))

    def flush(self) -> None:
        self.stream.flush()


class StreamRedactor:
    """Masks output that arrives in chunks: a secret split between two chunks is masked
    whole, since what may be the start of one is held back until the next chunk."""

    def __init__(self, redactor: Redactor):
        self.redactor = redactor
        self.held = b""

    def feed(self, chunk: bytes) -> bytes:
        """What of the output so far can be kept now, masked."""
        if not self.redactor.forms:
            return chunk
        data = self.held + chunk
        forms = self.redactor.forms
        cut = _before_any_form(data, len(data) - _longest_start_of_a_form(data, forms), forms)
        self.held = data[cut:]
        return self.redactor(data[:cut])

    def flush(self) -> bytes:
        """The end of the output: what was held back was no secret, or a whole one."""
        rest, self.held = self.held, b""
        return self.redactor(rest)


def _before_any_form(data: bytes, cut: int, forms: Iterable[bytes]) -> int:
    """`cut`, moved back so that no form found in `data` has its start before it and its end after."""
    moved = True
    while moved:
        moved = False
        for form in forms:
            start = data.find(form, max(0, cut - len(form) + 1))
            if 0 <= start < cut < start + len(form):
                cut, moved = start, True
    return cut


def _longest_start_of_a_form(data: bytes, forms: Iterable[bytes]) -> int:
    """The length of the longest end of `data` that is the beginning of a form (but not all of it)."""
    longest = 0
    for form in forms:
        start = max(0, len(data) - len(form) + 1)
        first = form[:1]
        while (start := data.find(first, start)) >= 0:
            if len(data) - start <= longest:
                break
            if form.startswith(data[start:]):
                longest = len(data) - start
                break
            start += 1
    return longest

