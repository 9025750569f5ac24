"""One test per internal of doit that batch-tasks relies on (see doit_bridge.py): each names
the internal, and fails when a doit upgrade changes it."""

from __future__ import annotations

from doit.cmd_base import TaskLoader2
from doit.cmd_forget import Forget as DoitForget
from doit.cmdparse import CmdOption, CmdParse
from doit.control import TaskControl
from doit.dependency import Dependency, SqliteDB
from doit.doit_cmd import DoitMain
from doit.exceptions import TaskFailed, UnmetDependency
from doit.task import Task

from batch_tasks import doit_bridge
from batch_tasks.doit_bridge import EXHAUSTED, HOLD, ForgetsToo, ReadyTasks, Runner


class Reporter:
    """What doit's Runner tells a reporter, kept."""

    def __init__(self):
        self.failures = []

    def add_failure(self, task, fail):
        self.failures.append(task.name)

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def dependencies(tmp_path) -> Dependency:
    return Dependency(SqliteDB, str(tmp_path / "doit.sqlite"))


def dispatcher(*tasks: Task, selected: list[str] | None = None):
    control = TaskControl(list(tasks))
    control.process(selected)
    return control.task_dispatcher()


def test_task_dispatcher_generator_yields_ready_nodes_and_hold_on_until_it_is_sent_the_done_one():
    ready = ReadyTasks(dispatcher(Task("first", None), Task("second", None, task_dep=["first"]),
                                  selected=["second"]))
    assert set(ready.tasks) == {"first", "second"}
    first = ready.next()
    assert first.task.name == "first"
    assert ready.next() is HOLD  # second waits for first, which doit has not heard is done
    first.run_status = "successful"
    second = ready.next(first)
    assert second.task.name == "second"
    second.run_status = "successful"
    assert ready.next(second) is EXHAUSTED


def test_runner_handle_task_error_final_result_and_stop_running(tmp_path):
    """Every failure passes through Runner._handle_task_error, which sets final_result and
    _stop_running; an unmet dependency is not counted, and the hook hears of both."""
    heard = []

    class Told(Runner):
        def task_failed(self, node, unmet_dependency):
            heard.append((node.task.name, unmet_dependency, self.stops))

    ready = ReadyTasks(dispatcher(Task("a", None), Task("b", None)))
    a, b = ready.next(), ready.next()
    runner = Told(dependencies(tmp_path), Reporter())
    runner.process_task_result(b, UnmetDependency("a failed"))
    assert (runner.final_result, runner.stops) == (0, False)
    runner.process_task_result(a, TaskFailed("it failed"))
    assert (runner.final_result, runner.stops) == (1, True)
    assert heard == [("b", True, False), ("a", False, True)]


def test_runner_select_task_reads_always_execute_for_the_forced_tasks_alone(tmp_path):
    current = [True]
    ready = ReadyTasks(dispatcher(Task("forced", None, uptodate=current), Task("other", None, uptodate=current)))
    runner = Runner(dependencies(tmp_path), Reporter(), forced=frozenset({"forced"}))
    forced, other = ready.next(), ready.next()
    assert runner.select_task(forced, ready.tasks)  # up to date, and run all the same
    assert not runner.select_task(other, ready.tasks)


def test_task_uptodate_keeps_a_value_that_is_not_callable_and_takes_its_truth(tmp_path):
    class Verdict:
        def __init__(self, runs):
            self.runs = runs

        def __bool__(self):
            return not self.runs

    verdicts = {"stale": Verdict(True), "current": Verdict(False)}
    tasks = [Task(name, None, uptodate=doit_bridge.as_uptodate(verdict)) for name, verdict in verdicts.items()]
    assert [doit_bridge.uptodate_value(task) for task in tasks] == list(verdicts.values())
    assert doit_bridge.uptodate_value(Task("bare", None)) is None
    records = dependencies(tmp_path)
    assert [records.get_status(task, {}).status for task in tasks] == ["run", "up-to-date"]


def test_cmdparse_params_non_default_keys_are_the_options_given():
    options = [CmdOption({"name": name, "long": name, "type": int, "default": 0}) for name in ("given", "left")]
    params, _ = CmdParse(options).parse(["--given", "2"])
    assert doit_bridge.changed_options(params) == {"given"}


def test_doit_cmd_cmdline_vars_are_the_name_value_arguments_in_order():
    left = DoitMain().process_args(["run-batch", "--set", "agent=claude", "--set", "model=opus"])
    assert left == ["run-batch", "--set", "--set"]
    assert doit_bridge.command_line_variables() == [("agent", "claude"), ("model", "opus")]


def test_forget_execute_forgets_through_dep_manager_remove_and_remove_all(tmp_path):
    also = []
    command = DoitForget(task_loader=TaskLoader2(), config={}, bin_name="doit", cmds={})
    command.task_list = [Task("a", None), Task("b", None)]
    command.sel_tasks, command.sel_default_tasks = ["a"], False
    command.dep_manager = ForgetsToo(dependencies(tmp_path), also.append, ["a", "b"])
    command.outstream = open(tmp_path / "out", "w")
    command._execute(forget_sub=False, forget_disable_default=False, forget_all=False)
    assert also == ["a"]
    command.dep_manager = ForgetsToo(dependencies(tmp_path), also.append, ["a", "b"])
    command._execute(forget_sub=False, forget_disable_default=False, forget_all=True)
    assert also == ["a", "a", "b"]


def test_sqlite_backend_schema_is_one_table_doit_of_task_id_and_task_data(tmp_path):
    records = dependencies(tmp_path)
    records.backend.set("g:two", "result:", "done")
    records.close()
    assert not doit_bridge.dependency_records_hold_an_ignore(str(tmp_path / "doit.sqlite"))
    records = dependencies(tmp_path)
    records.ignore(Task("g:one", None))
    records.close()
    assert doit_bridge.dependency_records_hold_an_ignore(str(tmp_path / "doit.sqlite"))


def test_sqlite_backend_conn_and_cache_hold_ignore_marks_as_status_is_ignore_reads_them(tmp_path):
    tasks = [Task(name, None) for name in ("g:one", "g:two", "g:three")]
    records = dependencies(tmp_path)
    records.ignore(tasks[0])
    records.close()
    records = dependencies(tmp_path)
    records.ignore(tasks[2])  # set in this process, not yet written
    assert doit_bridge.ignored(records, tasks) == {"g:one", "g:three"}
    assert {task.name for task in tasks if records.status_is_ignore(task)} == {"g:one", "g:three"}
