"""Secret masking on plain data: every form a secret can be printed in, each one a row.

A miss here leaks a secret into every log and report kept, so each form and each
boundary (the shortest secret, a lower-case name, overlapping secrets, a secret split
between two chunks of output) has its own case.
"""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_tasks.redaction import MIN_LENGTH, MaskedText, Redactor, secret_values

SECRET = "s3cr3t/<value>&more"  # a slash and Go's three escaped characters
MULTILINE = "-----BEGIN KEY-----\nAAAAbbbbCCCC\n-----END KEY-----"


@pytest.mark.parametrize("name, value, is_secret", [
    ("API_KEY", "abcdef", True),
    ("api_key", "abcdef", True),  # names are matched whatever their case
    ("GITHUB_TOKEN", "ghp_123456", True),
    ("my_secret", "hunter22", True),
    ("DB_PASSWORD", "correct horse", True),
    ("DB_PASSWD", "correct horse", True),
    ("AWS_CREDENTIALS", "a-long-value", True),
    ("HTTP_AUTHORIZATION", "Bearer xyz", True),
    ("SESSION_COOKIE", "c=abcdefgh", True),
    ("API_KEY", "abcde", False),  # one short of MIN_LENGTH: a setting, not a secret
    ("API_KEY", "", False),
    ("HOME", "/home/someone", False),  # not a secret's name
    ("PATH", "/usr/bin:/bin", False),
])
def test_a_secret_is_a_long_enough_value_of_a_secret_name(name, value, is_secret):
    assert (value in secret_values({name: value})) is is_secret


def test_the_shortest_secret_is_min_length_long():
    assert MIN_LENGTH == 6
    assert secret_values({"KEY": "x" * MIN_LENGTH}) == {"x" * MIN_LENGTH}
    assert secret_values({"KEY": "x" * (MIN_LENGTH - 1)}) == set()


@pytest.mark.parametrize("form", [
    SECRET,  # as it is
    json.dumps(SECRET)[1:-1],  # JSON-escaped by Python
    SECRET.replace("/", "\\/"),  # JavaScript's and PHP's escaped slash
    SECRET.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"),  # Go's encoding/json
], ids=["plain", "json", "escaped-slash", "go"])
def test_every_printed_form_of_a_secret_is_masked(form):
    redact = Redactor({"TOKEN": SECRET})
    assert redact(f"before {form} after".encode()) == b"before *** after"
    assert redact.text(f"before {form} after") == "before *** after"


@pytest.mark.parametrize("form", [
    json.dumps('pä"ss/wörd')[1:-1],  # escaped, non-ASCII as \\u00e4
    json.dumps('pä"ss/wörd', ensure_ascii=False)[1:-1],  # escaped, non-ASCII as it is
    json.dumps("pässwörd-1")[1:-1],  # \u00e4 escapes, as Python's json.dumps writes them
    json.dumps("pässwörd-1", ensure_ascii=False)[1:-1],
    "pässwörd-1",
], ids=["quote-ascii-escaped", "quote-utf8", "ascii-escaped", "json-utf8", "plain"])
def test_a_secret_beyond_ascii_is_masked_escaped_or_not(form):
    redact = Redactor({"PASSWORD": "pässwörd-1", "OTHER_PASSWORD": 'pä"ss/wörd'})
    assert redact(f"[{form}]".encode()) == b"[***]"


@pytest.mark.parametrize("form", [
    MULTILINE,
    MULTILINE.replace("\n", "\r\n"),  # printed with CRLF line ends
    json.dumps(MULTILINE)[1:-1],  # one JSON string with \n inside
    "AAAAbbbbCCCC",  # one of its lines alone
    "-----END KEY-----",
], ids=["lf", "crlf", "json", "a-line", "last-line"])
def test_a_secret_of_several_lines_is_masked_whole_and_line_by_line(form):
    redact = Redactor({"PRIVATE_KEY": MULTILINE})
    assert redact(f"<{form}>".encode()) == b"<***>"


@pytest.mark.parametrize("secret, printed", [
    ("first line here\nsecond line here", "first line here"),  # a line with spaces is one form
    ("first-lineX\r\nsecond-lineX", "first-lineX"),  # only the CR is taken off a line's end
    ("first line  \nsecond line", "first line  "),  # and not its spaces
])
def test_each_line_of_a_secret_of_several_lines_is_masked_as_it_is(secret, printed):
    assert Redactor({"PRIVATE_KEY": secret})(f"<{printed}>".encode()) == b"<***>"


def test_a_secret_as_python_shows_it_is_masked():
    # `doit info` shows settings as Python's repr does: `\x01` where JSON says `\u0001`.
    secret = "abc\x01defg"
    assert Redactor({"TOKEN": secret})(f"[{repr(secret)[1:-1]}]".encode()) == b"[***]"


def test_text_written_through_a_masked_stream_is_masked():
    written = io.StringIO()
    masked = MaskedText(written, Redactor({"TOKEN": "tok-123456"}))
    assert masked.write("a tok-123456 b") == len("a *** b")
    assert written.getvalue() == "a *** b"


def test_a_short_line_of_a_secret_of_several_lines_is_left_alone():
    # Masking `-----` or a two-character line would mask ordinary text everywhere.
    redact = Redactor({"PRIVATE_KEY": "line-one-long\nab\nline-three-long"})
    assert redact(b"ab cd") == b"ab cd"


@pytest.mark.parametrize("longer", ["abcdefghijkl", "0abcdefgh"])  # after it, and before it in sort order
def test_overlapping_secrets_are_masked_whole_longest_first(longer):
    redact = Redactor({"A_TOKEN": "abcdefgh", "B_TOKEN": longer})
    assert redact(f"x {longer} y abcdefgh z".encode()) == b"x *** y *** z"
    assert redact.text(f"x {longer} y") == "x *** y"


def test_values_passed_on_are_masked_whatever_their_names_if_long_enough():
    redact = Redactor({}, also=["worker-password", "short"])
    assert redact(b"worker-password short") == b"*** short"
    assert not Redactor({}, also=["short"])
    assert Redactor({}, also=["longer"])


def test_nothing_to_mask_leaves_everything_as_it_is():
    redact = Redactor({"HOME": "/root", "API_KEY": "abc"})
    assert not redact
    assert redact(b"/root abc") == b"/root abc"
    assert redact.stream().feed(b"/root abc") == b"/root abc"


def test_a_secret_that_is_not_utf8_is_masked_as_its_bytes():
    raw = b"\xff\xfeabcdef"
    redact = Redactor({"TOKEN": raw.decode("utf-8", "surrogateescape")})
    assert redact(b"x " + raw + b" y") == b"x *** y"


def test_every_string_of_a_json_value_is_masked_keys_too():
    redact = Redactor({"TOKEN": "tok-123456"})
    value = {"tok-123456": ["a tok-123456 b", {"deep": "tok-123456"}, 7, None], "n": 1.5}
    assert redact.value(value) == {"***": ["a *** b", {"deep": "***"}, 7, None], "n": 1.5}


@pytest.mark.parametrize("line, expected", [
    # Escapes that no printed form of the secret has: decoded, masked, written again.
    (b'{"text": "\\u0074ok-123456"}', {"text": "***"}),
    (b'["x \\u0074ok-123456 \\n y"]', ["x *** \n y"]),
    (b'{"\\u0074ok-123456": 1}', {"***": 1}),
])
def test_a_json_line_that_hides_a_secret_in_its_escapes_is_masked(line, expected):
    redact = Redactor({"TOKEN": "tok-123456"})
    assert json.loads(redact.json_line(line)) == expected


def test_a_json_line_with_leading_spaces_is_read_too():
    redact = Redactor({"TOKEN": "tok-123456"})
    assert json.loads(redact.json_line(b'  {"text": "\\u0074ok-123456"}')) == {"text": "***"}


def test_a_masked_json_line_keeps_its_text_beyond_ascii_readable():
    redact = Redactor({"TOKEN": "tok-123456"})
    assert redact.json_line(b'{"text": "\\u0074ok-123456 \xc3\xa9t\xc3\xa9"}') == '{"text": "*** été"}'.encode()


def test_a_json_line_with_a_lone_surrogate_is_masked_and_kept_escaped():
    # An agent may print any escape; a lone surrogate cannot be written as UTF-8.
    redact = Redactor({"TOKEN": "tok-123456"})
    line = redact.json_line(b'{"a": "\\ud800 \\u0074ok-123456"}')
    assert json.loads(line) == {"a": "\ud800 ***"}
    assert b"tok-" not in line


@pytest.mark.parametrize("line", [
    b'{"text":"nothing \\n secret"}',  # JSON with escapes but no secret: byte for byte as it was
    b"not json \\u0074ok-123456",  # not JSON: left to the plain masking
    b'{"broken": "\\u0074ok-123456"',  # looks like JSON, is not
    b'{"text": "tok-123456"}',  # no backslash: the plain masking finds it
])
def test_any_other_line_is_left_as_it_is_by_the_json_reading(line):
    assert Redactor({"TOKEN": "tok-123456"}).json_line(line) == line


def test_a_json_line_is_not_read_when_there_is_nothing_to_mask():
    line = b'{"text": "\\u0074ok-123456"}'
    assert Redactor({}).json_line(line) == line


@pytest.mark.parametrize("cut", range(1, len(b"one tok-123456 two")))
def test_a_secret_split_between_two_chunks_is_masked_whole(cut):
    data = b"one tok-123456 two"
    stream = Redactor({"TOKEN": "tok-123456"}).stream()
    assert stream.feed(data[:cut]) + stream.feed(data[cut:]) + stream.flush() == b"one *** two"


def test_what_might_start_a_secret_is_held_back_then_given_when_it_is_not_one():
    stream = Redactor({"TOKEN": "tok-123456"}).stream()
    assert stream.feed(b"abc tok-") == b"abc "
    assert stream.feed(b"12x") == b"tok-12x"
    assert stream.feed(b" tok-12") == b" "
    assert stream.flush() == b"tok-12"


def test_a_whole_secret_in_a_chunk_is_given_masked_at_once():
    stream = Redactor({"TOKEN": "tok-123456"}).stream()
    assert stream.feed(b"x tok-123456") == b"x ***"


@pytest.mark.parametrize("secrets, chunks, given_first", [
    # A secret ending where another may begin: held back whole, not cut at the other's start.
    ({"A_TOKEN": "abcdefXY", "B_TOKEN": "XYZZZZZZ"}, [b"x abcdefXY", b" y"], b"x "),
    ({"A_TOKEN": "abcdefXY", "B_TOKEN": "XYZZZZZZ"}, [b"abcdefXY", b" y"], b""),  # at the very start
    ({"A_TOKEN": "abcdefXY", "B_TOKEN": "XYZZZZZZ"}, [b"abcdefXY abcdefXY", b" y"], b"*** "),  # the second
    ({"A_TOKEN": "abcdefgX", "B_TOKEN": "XZZZZZZZ"}, [b"x abcdefgX", b" y"], b"x "),  # one character shared
    # Of two occurrences, the one the cut falls in decides, not the last one.
    ({"A_TOKEN": "ab1234", "L_TOKEN": "34Q-ab1234-ZZZ"}, [b"x ab1234Q-ab1234", b"-ZZZ y"], b"x "),
    # A secret that overlaps itself: back to its first occurrence the cut falls in.
    ({"TOKEN": "aaaaaa"}, [b"b" * 10 + b"a" * 13, b"!"], b"b" * 10),
    # A longer secret ending inside it: held back from where that one starts.
    ({"A_TOKEN": "abcdefXY", "B_TOKEN": "XYZZZZZZ", "C_TOKEN": "0012345abc"}, [b"x 0012345abcdefXY", b" y"], b"x "),
    # The end of the chunk is a secret's start only from an earlier repeat of its first character.
    ({"TOKEN": "abab1234"}, [b"x abab12", b"34 y"], b"x "),
    ({"TOKEN": "ab1234"}, [b"x aab", b"1234 y"], b"x a"),
    # A shorter secret's start inside a longer one's start: the longer one decides.
    ({"A_TOKEN": "tok-1234567", "B_TOKEN": "ok-999999"}, [b"x tok-12", b"34567 y"], b"x "),
])
def test_what_is_held_back_is_the_longest_possible_start_of_a_secret(secrets, chunks, given_first):
    redact = Redactor(secrets)
    stream = redact.stream()
    first = stream.feed(chunks[0])
    assert first == given_first
    assert first + b"".join(stream.feed(chunk) for chunk in chunks[1:]) + stream.flush() == redact(b"".join(chunks))


def test_a_stream_goes_on_after_a_flush_with_nothing_held():
    stream = Redactor({"TOKEN": "tok-123456"}).stream()
    stream.feed(b"x tok-")
    assert stream.flush() == b"tok-"
    assert stream.feed(b"y") == b"y"


def test_a_longer_secret_that_starts_inside_a_found_one_is_not_cut_in_two():
    # `tok-1234` is whole in the first chunk, but it may be the start of `tok-123456789`.
    stream = Redactor({"A_TOKEN": "tok-1234", "B_TOKEN": "tok-123456789"}).stream()
    out = stream.feed(b"a tok-1234") + stream.feed(b"56789 b") + stream.flush()
    assert out == b"a *** b"


OVERLAPPING = {"A_TOKEN": "abcdefXY", "B_TOKEN": "XYZZZZZZ", "C_TOKEN": "0012345abc", "D_TOKEN": "tok-123456"}
pieces = st.lists(st.sampled_from([b"tok-123456", b"tok-", b"123456", b"x", b" ", b"\n", b"00", b"12345",
                                   b"abc", b"def", b"XY", b"ZZZZZZ"]), max_size=14)


@settings(max_examples=400, deadline=None)
@given(pieces=pieces, cuts=st.lists(st.integers(min_value=0, max_value=120), max_size=6))
def test_output_in_any_chunks_is_masked_as_the_whole_would_be(pieces, cuts):
    data = b"".join(pieces)
    redact = Redactor(OVERLAPPING)
    stream, out, start = redact.stream(), b"", 0
    for cut in sorted(c for c in cuts if c <= len(data)):
        out += stream.feed(data[start:cut])
        start = cut
    out += stream.feed(data[start:]) + stream.flush()
    assert out == redact(data)
    assert b"tok-123456" not in out
