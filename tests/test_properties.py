"""Property tests of task.md: any input parses or gives one clear error, and ticking keeps every item.

1. Arbitrary text (and arbitrary bytes, through load_plan) either parses into a
   plan or raises one TaskFileError naming a line of the file; never anything else.
2. Generated valid task.md files parse into exactly the generated items, and
   ticking or unticking any of them changes only their marks, and re-parsing
   finds every item again with the marks as set.
3. Every setting, given a value of any YAML type in the front matter or in a
   hint, is either accepted (as the README's table says) or refused at its line,
   naming the setting.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batch_tasks.errors import TaskFileError
from batch_tasks.plan import settings as settings_mod
from batch_tasks.plan.plan import mark_column
from batch_tasks.plan.taskfile import CHECKBOX, MAX_BYTES, load_plan, parse
from batch_tasks.state.checkbox import set_checkbox

TASK_MD = Path("task.md")
# Example counts keep the whole file to a few seconds on 2 cores when nothing fails.
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MORE = settings(SETTINGS, max_examples=300)


def parse_for_a_run(text: str):
    """parse(), and the agent problem raised as a run (load_plan) raises it."""
    plan = parse(text, TASK_MD)
    if plan.agent_problem:
        raise plan.agent_error()
    return plan


def file_lines(text: str) -> list[str]:
    """The lines of task.md as the README counts them: CRLF, CR and LF each end a line."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def check_error(error: TaskFileError, line_count: int, where: str = "task.md") -> None:
    """One clear error: `task.md:LINE: message`, one line, LINE within the file."""
    assert isinstance(error.line, int) and 0 <= error.line <= line_count + 1, (error.line, line_count, str(error))
    assert str(error) == f"{where}:{error.line}: {error.message}"
    assert str(error).startswith(f"{where}:")
    assert error.message.strip(), str(error)
    assert "\n" not in str(error) and "\r" not in str(error), repr(str(error))


def check_plan(plan, text: str) -> None:
    """What any plan promises: items found at their own lines, unique keys."""
    lines = file_lines(text)
    slugs = [group.slug for group in plan.groups]
    assert len(set(slugs)) == len(slugs)
    for group in plan.groups:
        assert group.items, group.slug
        assert group.slug and group.source_line == lines[group.line - 1]
        modules = [item.module for item in group.items]
        assert len(set(modules)) == len(modules)
        for item in group.items:
            assert item.group == group.slug and item.key == f"{group.slug}:{item.module}"
            assert item.module and 1 <= item.line <= len(lines)
            assert item.source_line == lines[item.line - 1]
            match = CHECKBOX.match(item.source_line)
            assert match is not None and item.done == (match.group(1) != " ")


# ---------------------------------------------------------------------------
# 1. Arbitrary text and bytes


FRAGMENTS = [
    "---", "...", "--- x", "# ", "## G", "###### H", "####### seven", "Title", "===", "   ",
    "- [ ] ", "* [x] ", "+ [X] ", "1. [ ] ", "1) [ ] ", "123456789. [ ] ", "- [", "]", "[ ]", "[x]",
    "- ", "* ", "> ", "    ", "\t", "```", "~~~", "<!-- ", " -->", "-->", "<!--",
    "<!-- parallel: 2 -->", "<!-- parallel: false -->", "<!-- parallel: 0 -->",
    "<!-- command: [a, '{module}'] -->", "<!-- bogus: 1 -->", "<!-- template: -->", "<!-- agent: codex -->",
    "<div>", "</div>", "`", "``", "a", "auth", "src/auth", "`src/auth`", "é", "日本", ": ", ":", "x",
    "agent: command", "agent: codex", "agent: [command]", "command: [python3, x]", "command: python3",
    "command: []", "parallel: false", "parallel: 0", "parallel: yes", "parallel: 2.5", "max_turns: '3'",
    "template: [a]", "model: {a: 1}", "allowed_tools: [1, 2]", "extra_args: []", "unknown: 1",
    "? ", "&a ", "*a", "!!int ", "!!float ", "!!bool ", "!!binary ", "!!timestamp ", "!!python/name:os.system",
    "{", "}", "[", "]", "'", '"', "|", ">-", "%YAML 1.1", "null", "~", "true", "0x1F", "1e3", ".inf",
    "2024-01-01", "2024-13-45", "12:30:00", "\ufeff", "\x00", "\x0b", "\x0c", "\x1b", "\x7f", "\x85",
    "\u2028", "\\", "&amp;", "<", ">",
]

fragment = st.one_of(
    st.sampled_from(FRAGMENTS),
    st.text(max_size=8),
    st.builds(lambda char, n: char * n, st.sampled_from(">-#[{*` \t"), st.integers(1, 6000)),
    st.builds(lambda n: "  " * n + "- [ ] x: y", st.integers(0, 200)),
    st.builds(lambda n: "a" * n, st.integers(1, 100_000)),  # a very long line
)
line_text = st.one_of(st.lists(fragment, max_size=6).map("".join), st.text(max_size=40))
line_end = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def markdownish(draw) -> str:
    lines = draw(st.lists(st.tuples(line_text, line_end), max_size=30))
    text = "".join(line + end for line, end in lines)
    if lines and draw(st.booleans()):
        text = text[: -len(lines[-1][1])]  # no line end at the end
    return draw(st.sampled_from(["", "\ufeff"])) + text


any_text = st.one_of(markdownish(), st.text(max_size=300))


@SETTINGS
@given(any_text)
# Found by this test: PyYAML raises ValueError (not a YAMLError) for a timestamp that is no date...
@example("---\nmodel: 2024-13-45\n---\n")
@example("# G\n<!-- model: 2024-13-45 -->\n")
# ...and RecursionError for deeply nested flow collections.
@example("---\ncommand: " + "[" * 5000 + "\n---\n")
@example("# G\n<!-- command: " + "[" * 5000 + " -->\n")
def test_any_text_parses_or_fails_with_one_clear_error(text):
    try:
        plan = parse_for_a_run(text)
    except TaskFileError as error:
        check_error(error, len(file_lines(text)))
    else:
        check_plan(plan, text)


@st.composite
def any_bytes(draw) -> bytes:
    kind = draw(st.sampled_from(["binary", "text", "spoiled"]))
    if kind == "binary":
        return draw(st.binary(max_size=400))
    data = draw(any_text).encode("utf-8", "surrogatepass")
    if kind == "spoiled":  # text with a NUL or an invalid UTF-8 sequence somewhere
        at = draw(st.integers(0, len(data)))
        bad = draw(st.sampled_from([b"\0", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80", b"\xf4\x90\x80\x80", b"\xfe"]))
        data = data[:at] + bad + data[at:]
    return data


@contextlib.contextmanager
def in_temporary_folder():
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        yield Path(folder)


@SETTINGS
@given(any_bytes())
@example(b"# G\n- [ ] a: b\n\x00")
@example(b"\xef\xbb\xbf---\ncommand: [a]\n---\n# G\r\n- [ ] a: \xff\n")
def test_any_bytes_load_or_fail_with_one_clear_error(data):
    with in_temporary_folder():
        TASK_MD.write_bytes(data)
        try:
            plan = load_plan(TASK_MD)
        except TaskFileError as error:
            check_error(error, data.count(b"\n") + data.count(b"\r") + 1)
            outcome = ("error", error.line, error.message)
        else:
            outcome = ("plan", plan)

    nul = data.find(b"\0")
    if nul >= 0:
        assert outcome[0] == "error" and outcome[1] == data.count(b"\n", 0, nul) + 1, outcome
        assert "NUL" in outcome[2]
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as decode_error:
        assert outcome[0] == "error" and outcome[1] == data.count(b"\n", 0, decode_error.start) + 1, outcome
        assert "UTF-8" in outcome[2]
        return
    # Text: exactly what parse() makes of it, without its BOM.
    try:
        expected = ("plan", parse_for_a_run(text.removeprefix("\ufeff")))
    except TaskFileError as error:
        expected = ("error", error.line, error.message)
    assert outcome == expected


def test_a_huge_file_is_one_error_at_line_1():
    with in_temporary_folder():
        with open(TASK_MD, "wb") as stream:
            stream.truncate(MAX_BYTES + 1)  # sparse: no disk used
        try:
            load_plan(TASK_MD)
        except TaskFileError as error:
            check_error(error, 1)
            assert error.line == 1 and "MiB" in error.message
        else:
            raise AssertionError("a file over the size limit was parsed")


# ---------------------------------------------------------------------------
# 2. Valid task.md files: exactly their items, and ticks that keep them

WORD = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789éßЖж日ñΩ"), min_size=1, max_size=8)
MODULE_CHARS = st.sampled_from("abcdefghijklmnopqrstuvwxyzABC0123456789_-./éЖ日")


def slug_of(words: list[str]) -> str:
    """The README's slug of text made of these words and separators: lower case, runs joined by `-`."""
    return "-".join(word.lower() for word in words)


@dataclass
class GenItem:
    module: str
    text: str
    done: bool
    line: str = ""  # the checkbox line as written
    body: list[str] = field(default_factory=list)


@st.composite
def gen_item(draw) -> GenItem:
    indent = " " * draw(st.integers(0, 1))  # less than any item's content column: never nested
    kind = draw(st.sampled_from(["-", "*", "+", "1.", "1)"]))
    marker = kind if kind in "-*+" else str(draw(st.integers(0, 999_999_999))) + kind[1]
    gap = draw(st.sampled_from([" ", "  ", "   ", "\t"]))
    mark = draw(st.sampled_from([" ", "x", "X"]))
    words = draw(st.lists(WORD, max_size=5))
    if draw(st.booleans()) or not words:  # `module: text`, `module:` or `` `module`: text ``
        module = draw(st.text(MODULE_CHARS, min_size=1, max_size=12))
        # A capitalized word before `: ` is prose (`Run: pytest`); quoted, it is a module.
        prose_word = module.isalpha() and module != module.lower()
        quoted = f"`{module}`" if prose_word or draw(st.booleans()) else module
        text = draw(st.sampled_from([" ", "\t"])).join(words)
        extra = draw(st.sampled_from(["", " (see `x: y`)", ": more", " *now*"])) if words else ""
        text += extra
        written = f"{quoted}: {text}" if text else f"{quoted}:"
    else:  # no module: its text's slug is its module; a long one cut, with a hash of the text
        text = " ".join(words)
        module = slug_of(words)
        if len(module) > 48:
            cut = module[:40].rsplit("-", 1)[0] if "-" in module[:40] else module[:40]
            module = f"{cut}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"
        written = text
    trailing = draw(st.sampled_from(["", "", " ", "  "]))
    item = GenItem(module=module, text=text.strip(), done=mark != " ")
    item.line = f"{indent}{marker}{gap}[{mark}] {written}{trailing}"

    # What follows the first line, indented to the item's content.
    column = len(indent) + len(marker)
    column = (column // 4 + 1) * 4 if gap == "\t" else column + len(gap)
    pad = " " * column
    for block in draw(st.lists(st.sampled_from(["more", "blank", "sub", "code", "subitem"]), max_size=3)):
        if block == "more":
            item.body.append(pad + " ".join(draw(st.lists(WORD, min_size=1, max_size=4))))
        elif block == "blank" and item.body:
            item.body.append("")
        elif block == "sub":
            item.body.append(pad + "- a sub-list line")
        elif block == "subitem":
            item.body.append(pad + draw(st.sampled_from(["- [ ] ", "* [x] ", "1. [X] "])) + f"{module}: nested")
        elif block == "code":
            fence = draw(st.sampled_from(["```", "~~~"]))
            item.body += [pad + fence, pad + f"- [ ] {module}: in a code block", pad + "# not a heading", pad + fence]
    return item


@dataclass
class GenGroup:
    slug: str
    heading: list[str]  # its heading's lines (two when underlined)
    title: str
    level: int
    items: list[GenItem]
    blocks: list[tuple[int, list[str]]]  # (after which item, lines) of prose, code, quotes, comments
    limit: int | None = None


@st.composite
def gen_group(draw, title_words) -> GenGroup:
    count = len(title_words)
    separators = draw(st.lists(st.sampled_from([" ", " - ", ", ", "/", " & ", ": "]), min_size=count, max_size=count))
    title = "".join(word + sep for word, sep in zip(title_words, separators))[: -len(separators[-1]) or None]
    style = draw(st.sampled_from(["atx", "atx", "atx-closed", "setext"]))
    if style == "setext":
        level = draw(st.sampled_from([1, 2]))
        heading = [title, ("=" if level == 1 else "-") * draw(st.integers(1, 6))]
    else:
        level = draw(st.integers(1, 6))
        indent = " " * draw(st.integers(0, 1))  # less than an item's content column: not inside it
        closing = " " + "#" * draw(st.integers(1, 3)) if style == "atx-closed" else ""
        heading = [f"{indent}{'#' * level} {title}{closing}"]
    items = draw(st.lists(gen_item(), min_size=1, max_size=5, unique_by=lambda item: item.module))
    blocks = []
    limit = None
    kinds = st.sampled_from(["prose", "code", "quote", "comment", "hint", "html", "list"])
    for kind in draw(st.lists(kinds, max_size=3)):
        after = draw(st.integers(-1, len(items) - 1))
        copy = draw(st.sampled_from(items)).line  # an exact copy of a real item's line
        if kind == "prose":
            lines = ["Some prose - [ ] not an item: really."]
        elif kind == "code":
            lines = ["```text", copy, "- [ ] fake: in code", "# not a heading", "```"]
        elif kind == "quote":
            lines = ["> " + copy, "> - [x] quoted: no"]
        elif kind == "comment":
            lines = ["<!-- a plain comment -->"] if draw(st.booleans()) else ["<!--", copy, "-->"]
        elif kind == "html":
            lines = ["<div>", copy, "</div>"]
        elif kind == "list":
            lines = ["- a plain list item", "- [not a checkbox]"]
        elif limit is None:
            limit = draw(st.integers(1, 9))
            lines = [f"<!-- parallel: {limit} -->"]
        else:
            continue
        blocks.append((after, lines))
    return GenGroup(slug_of(title_words), heading, title, level, items, blocks, limit)


@dataclass
class GenFile:
    data: bytes
    groups: list[GenGroup]
    marks: list[int]  # the byte offset of each item's mark, in document order
    title: str


@st.composite
def gen_taskfile(draw) -> GenFile:
    titles = draw(st.lists(st.lists(WORD, min_size=1, max_size=3), min_size=1, max_size=4, unique_by=slug_of))
    groups = [draw(gen_group(words)) for words in titles]
    parts: list[tuple[str, GenItem | None]] = []  # lines, each with the item whose checkbox it is

    arguments = st.sampled_from(["python3", "tool.py", "{module}", "{group}", "{prompt_file}", "7", "--flag"])
    args = draw(st.lists(arguments, min_size=1, max_size=4))
    front = {
        "format": "format: batch",  # these files are of the batch dialect, whatever their items
        "agent": "agent: command",
        "command": "command: [" + ", ".join(f'"{arg}"' for arg in args) + "]"
        if draw(st.booleans())
        else "command:\n" + "".join(f'  - "{arg}"\n' for arg in args).rstrip("\n"),
    }
    parallel = draw(st.one_of(st.none(), st.just(False), st.integers(1, 64)))
    if parallel is not None:
        front["parallel"] = f"parallel: {str(parallel).lower()}"
    keys = draw(st.permutations(sorted(front)))
    if "agent" in keys and draw(st.booleans()):
        keys = [key for key in keys if key != "agent"]  # agent: command is the default
    parts += [("---", None)] + [(line, None) for key in keys for line in front[key].split("\n")] + [("---", None)]

    if draw(st.booleans()):
        parts += [("", None), ("Some prose before any heading.", None)]
    for group in groups:
        if draw(st.booleans()):  # a heading without items, even of the same name, is just a section
            parts += [("", None), ("#### " + group.title, None), ("Nothing to do here.", None)]
        parts += [("", None)] + [(line, None) for line in group.heading] + [("", None)]
        for index in range(-1, len(group.items)):
            if index >= 0:
                item = group.items[index]
                parts.append((item.line, item))
                parts += [(line, None) for line in item.body]
            for after, lines in group.blocks:
                if after == index:
                    parts += [("", None)] + [(line, None) for line in lines] + [("", None)]
            if index >= 0 and draw(st.booleans()):
                parts.append(("", None))

    style = draw(st.sampled_from(["\n", "\r\n", "mixed"]))
    data = bytearray(b"\xef\xbb\xbf" if draw(st.booleans()) else b"")
    marks = []
    for number, (line, item) in enumerate(parts):
        if item is not None:
            marks.append(len(data) + len(line[: CHECKBOX.match(line).start(1)].encode()))
        data += line.encode()
        last = number == len(parts) - 1
        if not last or draw(st.booleans()):
            end = style if style != "mixed" else draw(st.sampled_from(["\n", "\r\n"]))
            data += end.encode()
    first_h1 = next((group.title for group in groups if group.level == 1), None)
    return GenFile(bytes(data), groups, marks, first_h1 or "task")


def expected_body(item: GenItem) -> str:
    lines = list(item.body)
    while lines and not lines[-1].strip():
        lines.pop()
    return textwrap.dedent("\n".join(lines)).strip("\n")


def summary(plan):
    return [(item.key, item.text, item.body, item.done) for item in plan.items()]


def masked(data: bytes, marks: list[int]) -> bytes:
    data = bytearray(data)
    for offset in marks:
        data[offset : offset + 1] = b"?"
    return bytes(data)


def one_group_file(text: str, item_line: str, module: str, item_text: str) -> GenFile:
    """A hand-written GenFile of one group `# G` whose one item is the last line equal to item_line."""
    data = text.encode()
    item = GenItem(module, item_text, False, item_line)
    group = GenGroup("g", ["# G"], "G", 1, [item], [])
    return GenFile(data, [group], [data.rindex(item_line.encode()) + item_line.index("[") + 1], "G")


# Found by this test: a copy of the item's line in a code block above a `# comment` line of that
# block is ticked instead of the item (find_checkbox takes `# comment` for a heading).
CODE_BLOCK_COPY = one_group_file(
    "---\ncommand: [python3]\n---\n# G\n\n```sh\n- [ ] a: b\n# a comment\n```\n\n- [ ] a: b\n", "- [ ] a: b", "a", "b"
)
ticks = st.lists(st.tuples(st.integers(0, 99), st.booleans()), max_size=8)


@settings(SETTINGS, max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(gen_taskfile(), ticks)
@example(CODE_BLOCK_COPY, [(0, True)])
def test_valid_files_parse_to_their_items_and_ticks_keep_them(taskfile, operations):
    expected = [
        (f"{group.slug}:{item.module}", item.text, expected_body(item), item.done)
        for group in taskfile.groups
        for item in group.items
    ]
    with in_temporary_folder():
        path = Path("task.md").resolve()
        path.write_bytes(taskfile.data)
        plan = load_plan(path)
        assert summary(plan) == expected
        assert [group.slug for group in plan.groups] == [group.slug for group in taskfile.groups]
        assert [group.limit for group in plan.groups] == [group.limit for group in taskfile.groups]
        assert plan.title == taskfile.title
        text = taskfile.data.decode().removeprefix("\ufeff")
        check_plan(plan, text)

        # Tick and untick any items, any number of times, from the plan as first loaded;
        # the checkboxes nested in an item's instruction tick along with it.
        items = list(plan.items())
        starts = [3 if taskfile.data.startswith(b"\xef\xbb\xbf") else 0]
        starts += [match.end() for match in re.finditer(rb"\r\n|\r|\n", taskfile.data)]
        nested = [
            [starts[number - 1] + len(source[: mark_column(source)].encode()) for number, source in item.also_ticks]
            for item in items
        ]
        every_mark = taskfile.marks + [offset for offsets in nested for offset in offsets]
        marks = {offset: taskfile.data[offset : offset + 1] for offset in every_mark}
        for index, done in operations:
            index %= len(items)
            item = items[index]
            assert set_checkbox(path, plan.group(item.group), item, done, path.with_name("lock")) is True, item
            for offset in [taskfile.marks[index], *nested[index]]:
                if marks[offset].lower() != (b"x" if done else b" "):
                    marks[offset] = b"x" if done else b" "
        after = path.read_bytes()
        assert masked(after, every_mark) == masked(taskfile.data, every_mark)
        assert [after[offset : offset + 1] for offset in every_mark] == [marks[offset] for offset in every_mark]

        again = load_plan(path)
        unmarked = lambda body: re.sub(r"(?m)^([ \t]*(?:[-*+]|\d+[.)])[ \t]+\[)[ xX]\]", r"\1 ]", body)
        assert [(key, text, unmarked(body)) for key, text, body, _ in summary(again)] == [
            (key, text, unmarked(body)) for key, text, body, _ in expected
        ]
        assert [item.done for item in again.items()] == [marks[offset] != b" " for offset in taskfile.marks]


# ---------------------------------------------------------------------------
# 3. Settings of every type, in the front matter and as hints

# The README's table of settings; each is checked against an oracle written from it.
README_SETTINGS = [
    "agent", "command", "parallel", "template", "model", "allowed_tools", "permission_mode", "max_turns",
    "extra_args", "item_budget_usd", "budget_usd",
]
FRONT_MATTER_ONLY = {"budget_usd"}
# The agent options the command agent does not honour: given to it, each is refused at its line.
NOT_FOR_COMMANDS = {"model", "allowed_tools", "permission_mode", "max_turns", "extra_args", "item_budget_usd"}
# Settings the package declares beyond the table: only "taken, or refused at its line naming it".
OTHER_SETTINGS = sorted(set(settings_mod.FIELDS) - set(README_SETTINGS))
AGENT_NAMES = {"command", "claude", "codex", "gemini"}
REFUSED = object()  # what the oracle says of a value that must be refused
UNSET = object()  # a hint of null: the group does without the setting


def expected_setting(name: str, value, *, hint: bool):
    """The README as an oracle: the checked value, UNSET, or REFUSED."""

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_amount(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0

    if hint and name in FRONT_MATTER_ONLY:
        return REFUSED
    if hint and value is None and name != "agent":
        return UNSET  # "`null` unsets a batch-wide setting for the group"
    if name == "agent":
        ok = isinstance(value, str) and value in AGENT_NAMES
    elif name in ("command", "extra_args"):
        ok = isinstance(value, list) and value and all(is_int(v) or isinstance(v, (str, float)) for v in value)
        value = tuple(str(v) for v in value) if ok else value
    elif name == "parallel":
        ok = value is False or (is_int(value) and value >= 1)
        value = 1 if value is False else value
    elif name == "max_turns":
        ok = is_int(value) and value >= 1
    elif name in ("template", "model", "permission_mode"):
        ok = isinstance(value, str) and value.strip()
    elif name == "allowed_tools":
        value = value.split() if isinstance(value, str) else value
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    elif name in ("item_budget_usd", "budget_usd"):
        ok = is_amount(value)
        value = float(value) if ok else value
    else:
        raise AssertionError(name)
    if ok and name in NOT_FOR_COMMANDS and value not in (None, ()):  # `[]` leaves it unset
        return REFUSED  # the batches of these tests run `agent: command`
    return value if ok else REFUSED


RAW_VALUES = [
    "yes", "no", "on", "off", "~", "null", "", "0", "-1", "1", "3", "0x10", "0o7", "1_000", "1e3", "1.5",
    ".inf", "-.inf", ".nan", "'5'", '"false"', "false", "true", "True", "[]", "{}", "[a, 1]",
    "[python3, x.py, '{module}']", "[true]", "[null]", "[[a]]", "[1.5, b]", "{a: b}", "a b c", "'  '",
    "command", "codex", "claude", "gemini", "Command", "Read Edit", "[Read, 'Bash(pytest:*)']", "90s", "2h",
    "[75]", "2024-01-01", "2024-13-45", "2024-02-30", "12:30:00", "!!binary aGk=", "!!str 5", "!!int '7'",
    "!!float '1'", "&x [a]", "!!set {a}", "|\n  text", ">\n  folded", "\n  - a\n  - 2", "\n  - 1", "\n  a: b",
]
yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**70) | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=2),
    max_leaves=6,
)


def flow(value) -> str:
    """A value as one line of YAML."""
    return yaml.safe_dump([value], default_flow_style=True, width=math.inf, allow_unicode=True).strip()[1:-1]


def check_refusal(error: TaskFileError, text: str, name: str, lines: range, readable: bool) -> None:
    check_error(error, len(file_lines(text)))
    assert error.line in lines, (str(error), lines)
    if readable:  # YAML that cannot be read is reported as such
        assert f"'{name}'" in error.message, str(error)


setting_names = st.sampled_from(README_SETTINGS + OTHER_SETTINGS)
raw_value = st.one_of(st.sampled_from(RAW_VALUES), yaml_values.map(flow))
# A comment line above the setting, which must not move its line number.
FILLERS = ["# a comment", "# é\tand a tab", "# next line\u2028", "# next line\x85", "# next paragraph\u2029"]


@MORE
@given(setting_names, raw_value, st.integers(0, 2), st.one_of(st.none(), st.sampled_from(FILLERS)))
# Found by this test: a timestamp that is no date is a ValueError, not an error at its line...
@example("model", "2024-13-45", 0, None)
# ...deep nesting a RecursionError (from about 500 levels in a plain process)...
@example("command", "[" * 5000 + "]" * 5000, 0, None)
# ...a line separator (U+2028, U+0085, U+2029) in a comment moves every later setting's line by one...
@example("parallel", "0", 0, "# next line\u2028")
# ...and `agent: [command]` is refused as "setting names must be plain words", not naming agent...
@example("agent", "[command]", 0, None)
# ...and a budget of NaN is taken (it can never be reached).
@example("budget_usd", ".nan", 0, None)
def test_a_setting_of_any_type_is_taken_or_refused_at_its_line(name, raw, position, filler):
    base = {"agent": "agent: command", "command": "command: [python3, tool.py]"}
    base.pop(name, None)
    if name == "agent" and raw.strip() not in ("command", "'command'", '"command"'):
        base.pop("command")  # the other agents take no `command`
    lines = list(base.values())
    position = min(position, len(lines))
    lines.insert(position, f"{name}: {raw}")
    if filler is not None:
        lines.insert(position, filler)
        position += 1
    line = position + 2
    text = "---\n" + "\n".join(lines) + "\n---\n" + "# Group\n- [ ] a: b\n"
    try:
        value = yaml.safe_load("\n".join(lines))[name]
        readable = True
    except Exception:  # a YAMLError, or what PyYAML raises for a date that is none, or too deep nesting
        readable = False
    want = expected_setting(name, value, hint=False) if readable and name in README_SETTINGS else None
    try:
        plan = parse_for_a_run(text)
    except TaskFileError as error:
        check_refusal(error, text, name, range(line, line + raw.count("\n") + 1), readable)
        assert want is None or want is REFUSED, f"refused {name}: {value!r}: {error}"
    else:
        assert readable, f"took YAML that cannot be read: {raw!r}"
        assert want is not REFUSED, f"took {name}: {value!r}"
        if want is not None:
            assert plan.settings[name] == want


hint_value = st.one_of(st.sampled_from([raw for raw in RAW_VALUES if "\n" not in raw]), yaml_values.map(flow))


@MORE
@given(setting_names, hint_value, st.booleans())
@example("model", "2024-13-45", False)
@example("command", "[" * 5000 + "]" * 5000, False)
# <!-- agent: [command] --> raises TypeError (unhashable list), a traceback.
@example("agent", "[command]", False)
# <!-- command: null --> is reported at the front matter's `agent: command` (line 2), not at the hint.
@example("command", "null", True)
def test_a_hint_of_any_type_is_taken_or_refused_at_its_line(name, raw, before_items):
    hint = f"<!-- {name}: {raw} -->"
    body = f"# Group\n{hint}\n\n- [ ] a: b\n" if before_items else f"# Group\n- [ ] a: b\n\n{hint}\n"
    text = "---\nagent: command\ncommand: [python3, tool.py]\n---\n" + body
    line = 6 if before_items else 8
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
        readable = True
    except Exception:
        readable = False
    want = expected_setting(name, value, hint=True) if readable and name in README_SETTINGS else None
    named = name  # the setting a refusal names
    if want is UNSET and name == "command":
        want = REFUSED  # the command agent needs its command
    if name == "agent" and want in AGENT_NAMES - {"command"}:
        want, named = REFUSED, "command"  # that agent does not take the batch's `command`
    try:
        plan = parse_for_a_run(text)
    except TaskFileError as error:
        check_refusal(error, text, named, range(line, line + 1), True)
        assert want is None or want is REFUSED, f"refused {name}: {value!r}: {error}"
    else:
        assert readable, f"took a hint that cannot be read: {raw!r}"
        assert want is not REFUSED, f"took {name}: {value!r}"
        (group,) = plan.groups
        if want is not None:
            assert group.settings[name] == (None if want is UNSET else want)
        if name == "parallel" and want is not None:
            assert group.limit == (None if want is UNSET else want)
