"""Hostile or unlucky input is one clear error with its file and line, never a crash.

Templates from outside the task's folder, templates that include or loop without
end, YAML alias bombs, names too long for an environment: real `doit run-batch` runs.
"""

import os
import resource

import pytest
from conftest import FRONT_MATTER


def front_matter(*lines: str) -> str:
    return FRONT_MATTER.replace("agent: command\n", "agent: command\n" + "".join(f"{line}\n" for line in lines))


def refused(result, where: str, words: str) -> None:
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"{where}: " in result.stderr and words in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("template", ["/proc/self/environ", "../../../../etc/passwd", "outside.j2"])
def test_a_template_from_outside_the_task_folder_is_refused_at_its_line(batch, template):
    (batch.path / "outside.j2").symlink_to("/etc/passwd")
    batch.write("# T\n## G\n- [ ] a: x\n", front_matter(f"template: {template}"))
    result = batch.run("run-batch")
    refused(result, "task.md:3", "is outside the task file's folder")
    assert batch.runs("start") == {}


def test_a_missing_template_is_named_with_the_line_of_its_hint(batch):
    batch.write("# T\n## G\n<!-- template: nope.j2 -->\n- [ ] a: x\n")
    refused(batch.run("run-batch"), "task.md:7", "template 'nope.j2' cannot be read: No such file or directory")


@pytest.mark.parametrize("statement", ['{% include "other.j2" %}', '{% import "other.j2" as other %}'])
def test_a_template_cannot_include_or_import(batch, statement):
    (batch.path / "other.j2").write_text("secret stuff\n")
    (batch.path / "mine.j2").write_text(f"Do {{{{ item.text }}}}\n{statement}\n")
    batch.write("# T\n## G\n- [ ] a: x\n", front_matter("template: mine.j2"))
    refused(batch.run("run-batch"), "mine.j2:2", "a template cannot")


def test_a_template_that_asks_for_a_huge_range_is_one_clear_error(batch):
    (batch.path / "loop.j2").write_text("{% for i in range(10**9) %}{{ i }}{% endfor %}\n")
    batch.write("# T\n## G\n- [ ] a: x\n", front_matter("template: loop.j2"))
    result = batch.run("run-batch", timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr  # every prompt is rendered first
    assert "template loop.j2: range() of 1000000000 numbers" in result.stderr
    assert "PythonAction Error" not in result.stdout + result.stderr
    assert not (batch.path / "runs.log").exists()


def limited_memory():
    resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))


def test_a_yaml_alias_bomb_is_refused_without_taking_the_memory(batch):
    big = "y" * 2**20
    aliases = ", ".join(["*s"] * 1000)
    batch.write("# T\n## G\n- [ ] a: x\n", f'---\nagent: command\ncommand: [&s "{big}", {aliases}]\n---\n')
    result = batch.run("run-batch", timeout=120, preexec_fn=limited_memory)
    refused(result, "task.md:3", "too big once its YAML aliases are expanded")


@pytest.mark.parametrize("where, body", [
    ("task.md:6", "# T\n## " + "h" * 2**20 + "\n- [ ] a: x\n"),
    ("task.md:7", "# T\n## G\n- [ ] " + "m" * 2**20 + ": x\n"),
], ids=["heading", "module"])  # short ids: pytest puts a test's id in PYTEST_CURRENT_TEST, which its agents inherit
def test_a_name_too_long_for_the_environment_is_refused_at_its_line(batch, where, body):
    batch.write(body)
    refused(batch.run("run-batch"), where, "characters long; at most 200")
    assert not os.path.exists(batch.path / "runs.log")


def test_a_module_with_an_equal_sign_is_one_error_at_its_line(batch):
    batch.write("# T\n## G\n- [ ] a=b: one\n")
    result = batch.run("run-batch")
    assert result.returncode == 3
    line = batch.taskfile.read_text().splitlines().index("- [ ] a=b: one") + 1
    assert result.stderr.strip() == (f"ERROR: task.md:{line}: module name 'a=b' contains '=': write it another way, "
                                     "e.g. with `-` (doit task names cannot hold '=')")
