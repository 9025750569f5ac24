"""The check before a run (and a dry run) renders each template once per shape of context its
items give it, not once per item, and still stops at the first item whose prompt would fail;
an item's records are looked for with one listing of its group's folder. Plain data, in process."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import FRONT_MATTER

from batch_tasks.errors import BatchError
from batch_tasks.plan import prompt
from batch_tasks.run import prompt_check_stamp, prompt_context
from batch_tasks.state import item_status, staleness
from batch_tasks.tasks import batch as batch_mod
from batch_tasks.tasks import doit_tasks
from batch_tasks.tasks.doit_tasks import item_job

PLAN = "# T\n## First\n" + "".join(f"- [ ] m{n}: step one of m{n}\n" for n in range(30)) + \
       "## Second\n" + "".join(f"- [ ] m{n}: step two of m{n}\n" for n in range(30))


def jobs_of(batch):
    return [item_job(batch, index, group, item) for index, group in enumerate(batch.plan.groups) for item in group.items]


def keys_of(batch):
    return [item.key for item in batch.plan.items()]


def loaded(batch, template: str):
    batch.write(PLAN, FRONT_MATTER.replace("agent: command\n", "agent: command\ntemplate: t.j2\n"))
    (batch.path / "t.j2").write_text(template)
    return batch_mod.load(batch.taskfile, for_dry_run=True)


def test_a_template_is_rendered_once_per_shape_of_its_context(batch, monkeypatch):
    loaded_batch = loaded(batch, "{{ item.instruction }} {% if previous %}{{ previous.instruction }}{% endif %}\n")
    rendered = []
    real_render = prompt.render
    monkeypatch.setattr(prompt, "render", lambda template, context: rendered.append(context["item"]["key"])
                        or real_render(template, context))
    prompt_context.check_prompts(jobs_of(loaded_batch), loaded_batch.state)
    assert rendered == ["first:m0", "second:m0"]  # the first group has no previous item, the second has


def test_the_error_names_the_first_item_whose_prompt_fails(batch):
    loaded_batch = loaded(batch, "{{ item.instruction }}{% if previous %}{{ previous.result.summary }}{% endif %}\n")
    with pytest.raises(BatchError) as raised:
        prompt_context.check_prompts(jobs_of(loaded_batch), loaded_batch.state)
    assert "'dict object' has no attribute 'summary'" in str(raised.value)
    line = batch.taskfile.read_text().splitlines().index("- [ ] m0: step two of m0") + 1
    assert str(raised.value).endswith(f"(rendering the prompt of second:m0, line {line})")


def test_a_new_items_records_are_not_opened_one_by_one(batch, monkeypatch):
    loaded_batch = loaded(batch, "{{ item.instruction }}\n")
    damaged = loaded_batch.state.item("second", "m3")
    damaged.ensure()
    with open(damaged.result, "w") as stream:
        stream.write("{ damaged")
    opened = []
    real_record = item_status._record
    monkeypatch.setattr(item_status, "_record", lambda path: opened.append(path) or real_record(path))
    verdicts = staleness.assess(loaded_batch.plan, loaded_batch.state, loaded_batch.fingerprints)
    assert opened == [damaged.result]  # the one item with a folder
    assert verdicts["second:m3"].problem
    assert all(verdict.runs and not verdict.problem for key, verdict in verdicts.items() if key != "second:m3")


def test_a_dry_run_checks_the_prompts_against_the_records_its_load_read(batch, monkeypatch):
    loaded_batch = loaded(batch, "{{ item.instruction }}{% if previous %}{{ previous.result.summary }}{% endif %}\n")
    assert all(status.kind == item_status.ABSENT for status in loaded_batch.statuses.values())
    said_done = {key: item_status.ItemStatus(item_status.DONE, result={"summary": "ok"}) if key.startswith("first:")
                 else status for key, status in loaded_batch.statuses.items()}
    monkeypatch.setattr(item_status, "read_statuses", lambda folders: pytest.fail("records read again"))
    monkeypatch.setattr(prompt_context, "read_statuses", lambda folders: pytest.fail("records read again"))
    prompt_context.check_prompts(jobs_of(loaded_batch), loaded_batch.state, said_done)
    with pytest.raises(BatchError, match="has no attribute 'summary'"):
        prompt_context.check_prompts(jobs_of(loaded_batch), loaded_batch.state, loaded_batch.statuses)


def test_a_dry_runs_check_is_not_done_again_until_what_it_depends_on_changes(batch, monkeypatch):
    loaded_batch = loaded(batch, "{{ item.instruction }}{% if previous %}{{ previous.result.summary }}{% endif %}\n")
    first = {key: item_status.ItemStatus(item_status.DONE, result={"summary": "ok"}) if key.startswith("first:")
             else status for key, status in loaded_batch.statuses.items()}
    checked = replace(loaded_batch, statuses=first)
    rendered = []
    real_render = prompt.render
    monkeypatch.setattr(prompt, "render", lambda template, context: rendered.append(context["item"]["key"])
                        or real_render(template, context))
    prompt_check_stamp.check_once(checked, keys_of(checked))
    assert rendered == ["first:m0", "second:m0"]
    prompt_check_stamp.check_once(checked, keys_of(checked))
    assert rendered == ["first:m0", "second:m0"]  # the same inputs: not checked again
    # A previous item's result of another shape: what a template is told of it changed.
    other = {**first, "first:m3": item_status.ItemStatus(item_status.DONE, result={"summary": "ok", "files": ["a"]})}
    rendered.clear()
    prompt_check_stamp.check_once(replace(loaded_batch, statuses=other), keys_of(checked))
    assert rendered == ["first:m0", "second:m0", "second:m3"]
    # Fewer items checked (one ran since), then an edited template: checked again each time.
    rendered.clear()
    prompt_check_stamp.check_once(checked, keys_of(checked)[1:])
    assert rendered == ["first:m1", "second:m0"]
    (batch.path / "t.j2").write_text("{{ item.instruction }}{% if previous %}{{ previous.result.files }}{% endif %}\n")
    edited = replace(batch_mod.load(batch.taskfile, for_dry_run=True), statuses=first)
    with pytest.raises(BatchError, match="has no attribute 'files'"):
        prompt_check_stamp.check_once(edited, keys_of(edited))


def test_a_template_error_is_told_every_time_a_dry_run_is_asked(batch):
    loaded_batch = loaded(batch, "{{ item.instruction }}{% if previous %}{{ previous.result.summary }}{% endif %}\n")
    line = batch.taskfile.read_text().splitlines().index("- [ ] m0: step two of m0") + 1
    for _ in range(2):  # a check that failed leaves no stamp
        with pytest.raises(BatchError) as raised:
            prompt_check_stamp.check_once(loaded_batch, keys_of(loaded_batch))
        assert str(raised.value).endswith(f"(rendering the prompt of second:m0, line {line})")
    assert not (loaded_batch.state.root / prompt_check_stamp.NAME).exists()


def test_tasks_built_without_jobs_and_the_jobs_made_for_a_few_are_a_runs(batch):
    """A dry run's tasks carry no jobs; those it makes (for --prompts, or its check) are the ones a run's tasks carry."""
    loaded_batch = loaded(batch, "{{ item.instruction }}\n")
    with_jobs = {task.name: task.meta["job"] for task in doit_tasks.build_tasks(loaded_batch) if "job" in (task.meta or {})}
    assert len(with_jobs) == 60
    assert not any("job" in (task.meta or {}) for task in doit_tasks.build_tasks(loaded_batch, jobs=False))
    assert doit_tasks.jobs_of(loaded_batch, ["second:m3", "first:m0"]) == {key: with_jobs[key] for key in ("second:m3", "first:m0")}
