"""The tick's fast path: the item found at its recorded byte offset, verified by bytes, with
every guarantee of a tick kept; a search of the file only when the file moved under it."""

import dataclasses
import os
import threading

import pytest

from batch_tasks.plan.taskfile import load_plan
from batch_tasks.state import checkbox
from batch_tasks.state.checkbox import set_checkbox

FRONT = "---\ncommand: [x]\n---\n"


@pytest.fixture
def searches(monkeypatch):
    """How many times a tick searched the whole file."""
    calls = []
    search = checkbox.find_checkbox

    def counted(data, group, item):
        calls.append(item.key)
        return search(data, group, item)

    monkeypatch.setattr(checkbox, "find_checkbox", counted)
    return calls


def tick(path, plan, key, done=True, moves=None):
    item = next(item for item in plan.items() if item.key == key)
    return set_checkbox(path, plan.group(item.group), item, done, path.with_name("tick.lock"), moves)


def test_an_unchanged_file_is_ticked_at_the_recorded_offset_without_a_search(tmp_path, searches):
    path = tmp_path / "task.md"
    raw = (FRONT + "# G\n" + "".join(f"- [ ] m{i}: item {i}\n" for i in range(50))).encode()
    path.write_bytes(raw)
    plan = load_plan(path)
    for item in plan.items():
        assert raw[item.mark_offset - 1 : item.mark_offset + 2] == b"[ ]", item
    for i in (49, 0, 17):
        assert tick(path, plan, f"g:m{i}")
    assert searches == []
    expected = bytearray(raw)
    for i in (49, 0, 17):
        expected[plan.group("g").items[i].mark_offset] = ord("x")
    assert path.read_bytes() == bytes(expected)


def test_a_file_moved_under_the_plan_is_searched_once_then_ticked_at_the_new_offsets(tmp_path, searches):
    path = tmp_path / "task.md"
    path.write_text(FRONT + "# G\n" + "".join(f"- [ ] m{i}: item {i}\n" for i in range(20)))
    plan = load_plan(path)
    moved = path.read_text().replace("# G\n", "# G\nA paragraph the user added\nabove the items.\n\n")
    path.write_text(moved)
    run = checkbox.Moves()  # what one run's ticks found
    for i in range(20):
        assert tick(path, plan, f"g:m{i}", moves=run)
    assert searches == ["g:m0"]  # the first tick found how far things moved; the rest went straight there
    assert path.read_text() == moved.replace("- [ ] m", "- [x] m")
    # An item ticked again after a second move: searched, found where it now is.
    again = "Another line on top.\n" + path.read_text()
    path.write_text(again)
    assert tick(path, plan, "g:m3", done=False, moves=run)
    assert path.read_text() == again.replace("- [x] m3:", "- [ ] m3:")
    # Another run (another process, or the next in this one) knows nothing of this one's: it searches.
    assert tick(path, plan, "g:m4", done=False, moves=checkbox.Moves())
    assert searches == ["g:m0", "g:m3", "g:m4"]


def test_a_changed_line_is_refused_and_the_file_left_as_it_is(tmp_path, searches):
    path = tmp_path / "task.md"
    path.write_text(FRONT + "# G\n- [ ] a: one\n- [ ] b: two\n")
    plan = load_plan(path)
    for edit in ("- [ ] a: one, reworded\n", "* [ ] a: one\n", "- [ ] a: one \n", "  - [ ] a: one\n"):
        text = FRONT + "# G\n" + edit + "- [ ] b: two\n"
        path.write_text(text)
        assert not tick(path, plan, "g:a")
        assert path.read_text() == text
    assert tick(path, plan, "g:b")
    assert path.read_text().endswith("- [x] b: two\n")


def test_a_line_that_only_begins_like_the_item_is_not_it(tmp_path):
    path = tmp_path / "task.md"
    path.write_text(FRONT + "# G\n- [ ] a: one\n")
    plan = load_plan(path)
    text = FRONT + "# G\n- [ ] a: one more thing\n"  # same start at the same offset, longer line
    path.write_text(text)
    assert not tick(path, plan, "g:a")
    assert path.read_text() == text


def test_crlf_bom_and_tabs_keep_their_bytes_on_the_fast_path(tmp_path, searches):
    raw = "\ufeff---\r\ncommand: [x]\r\n---\r\n# One\r\n-\t[ ]\ta:\tone\r\n1. [ ] b: two\r\n* [X] c: three\r".encode()
    path = tmp_path / "task.md"
    path.write_bytes(raw)
    plan = load_plan(path)
    assert tick(path, plan, "one:a") and tick(path, plan, "one:b") and tick(path, plan, "one:c", done=False)
    assert searches == []
    assert path.read_bytes() == raw.replace(b"\t[ ]", b"\t[x]").replace(b"1. [ ]", b"1. [x]").replace(b"[X]", b"[ ]")


def test_parallel_ticks_from_many_threads_lose_nothing(tmp_path, searches):
    path = tmp_path / "task.md"
    raw = (FRONT + "# G\n" + "".join(f"- [ ] m{i}: item {i}\n" for i in range(300))).encode()
    path.write_bytes(raw)
    plan = load_plan(path)
    items = list(plan.items())

    def worker(part):
        for item in items[part::8]:
            assert set_checkbox(path, plan.group("g"), item, True, tmp_path / "tick.lock")

    threads = [threading.Thread(target=worker, args=(part,)) for part in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert path.read_bytes() == raw.replace(b"- [ ] m", b"- [x] m")
    assert searches == []


SUB = FRONT + "# G\n- [ ] a: parent\n  - [ ] first step\n  - [x] second step\n\n  Some text.\n  - [ ] third step\n- [ ] b: next\n"


def with_sub_boxes(plan, key, numbers, lines):
    item = next(item for item in plan.items() if item.key == key)
    return dataclasses.replace(item, also_ticks=tuple((number, lines[number - 1]) for number in numbers))


def test_sub_boxes_tick_and_untick_along_byte_exactly(tmp_path, searches):
    path = tmp_path / "task.md"
    raw = SUB.replace("\n", "\r\n").encode()
    path.write_bytes(raw)
    plan = load_plan(path)
    lines = raw.decode().split("\r\n")
    item = with_sub_boxes(plan, "g:a", (6, 7, 10), lines)
    assert set_checkbox(path, plan.group("g"), item, True, tmp_path / "lock")
    ticked = raw.replace(b"[ ] a:", b"[x] a:").replace(b"[ ] first", b"[x] first").replace(b"[ ] third", b"[x] third")
    assert path.read_bytes() == ticked  # b, and the front matter's [x], untouched
    assert set_checkbox(path, plan.group("g"), item, False, tmp_path / "lock")
    assert path.read_bytes() == ticked.replace(b"- [x]", b"- [ ]")  # the second step, ticked by hand, unticks along
    assert searches == []


def test_a_sub_box_moved_in_its_block_is_found_and_a_changed_one_left(tmp_path):
    path = tmp_path / "task.md"
    path.write_text(SUB)
    plan = load_plan(path)
    item = with_sub_boxes(plan, "g:a", (6, 7, 10), SUB.split("\n"))
    edited = SUB.replace("  - [ ] first step\n", "  A line added in the item.\n  - [ ] first step\n").replace(
        "third step", "third step, reworded"
    )
    path.write_text(edited)
    assert set_checkbox(path, plan.group("g"), item, True, tmp_path / "lock")
    assert path.read_text() == edited.replace("- [ ] a:", "- [x] a:").replace("[ ] first", "[x] first")
    # A copy of a sub-box's line below the item's block is another item's business.
    copy = FRONT + "# G\n- [ ] a: parent\n- [ ] b: next\n  - [ ] first step\n"
    path.write_text(copy)
    moved = dataclasses.replace(item, mark_offset=copy.index("[ ] a:") + 1)
    assert set_checkbox(path, plan.group("g"), moved, True, tmp_path / "lock")
    assert path.read_text() == copy.replace("[ ] a:", "[x] a:")


def save_in_place(path, data: bytes) -> None:
    path.write_bytes(data)  # the same file, written over


def save_renamed_over(path, data: bytes) -> None:
    replacement = path.with_name(".task.md.swp")  # a new file, renamed over task.md
    replacement.write_bytes(data)
    os.replace(replacement, path)


@pytest.mark.parametrize("save", [save_in_place, save_renamed_over])
@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_an_editors_save_between_ticks_is_kept_and_every_item_still_ticked(tmp_path, save, eol):
    # As a run sees a user edit task.md: the plan (and its marks' offsets) loaded before, a
    # third of the items ticked, then a save that adds lines above every item, changes the
    # prose, appends a section and may turn every line end into CRLF.
    path = tmp_path / "task.md"
    path.write_text(FRONT + "# T\n\nSome prose that must stay.\n\n## G\n"
                    + "".join(f"- [ ] m{i:02d}: item {i}\n" for i in range(30)))
    plan = load_plan(path)
    for i in range(10):
        assert tick(path, plan, f"g:m{i:02d}")
    edited = (path.read_text().replace("# T\n", "# T\n\nA preface,\nadded mid-run.\n")
              .replace("Some prose that must stay.", "Edited prose.\nAnd a new line.")
              + "\n## Later\nA note added while the batch ran.\n").replace("\n", eol).encode()
    save(path, edited)
    for i in range(10, 30):
        assert tick(path, plan, f"g:m{i:02d}")
    assert path.read_bytes() == edited.replace(b"- [ ] m", b"- [x] m")
