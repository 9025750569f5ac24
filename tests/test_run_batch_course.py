"""run-batch's course as a list of named steps (commands.py): each step takes what the one
before hands over, and the course starts from what the command line gives and ends in an
exit status. Plain data: the steps' own annotations, read without running anything (and one
step, in process, standing in for the load)."""

import typing

from batch_tasks.commands.commands import RunBatch
from batch_tasks.commands.run_batch_steps import DoitTasks, Ended, Given, run_steps


def _takes(step):
    hints = typing.get_type_hints(step)
    (name,) = [name for name in hints if name != "return"]
    return hints[name]


def _hands_over(step):
    """What a step hands to the next: its return type, less the exit status that ends the course."""
    returned = typing.get_type_hints(step)["return"]
    kinds = set(typing.get_args(returned)) or {returned}
    return kinds - {int} or {int}


def _chain(steps):
    return [(step.__name__, _takes(step), _hands_over(step)) for step in steps]


def _assert_chained(steps, first, last):
    chain = _chain(steps)
    assert chain[0][1] is first, chain[0]
    for (name, _, hands), (next_name, takes, _) in zip(chain, chain[1:]):
        assert hands == {takes}, f"{name} hands over {hands}, but {next_name} takes {takes}"
    assert chain[-1][2] == {last}, chain[-1]


def test_the_course_before_and_after_doit_hands_each_step_what_it_takes():
    command = RunBatch()
    _assert_chained((*RunBatch.BEFORE_DOIT, command.through_doit, *RunBatch.AFTER_DOIT), Given, int)


def test_the_course_inside_doit_starts_from_its_tasks_and_ends_where_the_stamp_starts():
    _assert_chained(RunBatch.IN_DOIT, DoitTasks, Ended)
    assert _takes(RunBatch.AFTER_DOIT[0]) is Ended


def test_the_steps_come_in_the_order_a_run_takes():
    names = [step.__name__ for step in (*RunBatch.BEFORE_DOIT, *RunBatch.IN_DOIT, *RunBatch.AFTER_DOIT)]
    assert names == ["answer_from_the_stamp", "load", "check_before_the_lock", "lock", "recover",
                     "select", "answer_the_question", "explain", "check_the_selection", "prepare", "dispatch",
                     "close_up", "keep_the_stamp"]


def test_an_exit_status_ends_the_course_there():
    def never(_):
        raise AssertionError("a step after an exit status ran")

    assert run_steps((lambda _: [1], lambda value: value + [2]), None) == [1, 2]
    assert run_steps((lambda _: 4, never), None) == 4


def test_the_course_loads_with_the_collector_off_and_leaves_it_on(tmp_path, monkeypatch):
    import gc

    from batch_tasks.errors import BatchError

    seen = []

    def load(given):  # a stand-in for the steps that load: what they see, then a stop
        seen.append(gc.isenabled())
        raise BatchError("stop here")

    monkeypatch.setattr(RunBatch, "BEFORE_DOIT", (load,))
    command = RunBatch()
    params, args = command.cmdparser.parse([])
    params["taskfile"] = str(tmp_path / "task.md")
    assert command.execute(params, args) == 3
    assert seen == [False] and gc.isenabled()
