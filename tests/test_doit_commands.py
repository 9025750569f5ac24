"""doit's own commands on a batch: list, info and forget, once doit.cfg names the loader."""

import pytest

TASK = """\
# T
## Inventory
- [ ] auth: list the functions
- [ ] billing: list the functions
## Extract interfaces
- [ ] auth: extract a protocol
"""


@pytest.fixture
def configured(batch):
    batch.write(TASK)
    (batch.path / "doit.cfg").write_text("[GLOBAL]\nloader = batch\n")
    return batch


def test_list_shows_groups_and_with_all_the_items_with_status(configured):
    listing = configured.run("list")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split() == ["inventory", "Inventory", "extract-interfaces", "Extract", "interfaces"]
    assert configured.run("run-batch", "inventory:auth").returncode == 0
    full = configured.run("list", "--all", "--status")
    lines = [line.split()[:2] for line in full.stdout.splitlines()]
    assert ["U", "inventory:auth"] in lines
    assert ["R", "inventory:billing"] in lines
    assert ["R", "extract-interfaces:auth"] in lines


def test_info_says_why_an_item_runs(configured):
    info = configured.run("info", "inventory:billing")
    assert info.returncode == 1 and "would run: yes, new" in info.stdout  # exit 1: it would run, as doit's says
    assert configured.run("run-batch").returncode == 0
    after = configured.run("info", "inventory:billing")
    assert after.returncode == 0 and "would run: no, up to date" in after.stdout


def test_forget_a_group_runs_its_items_and_what_follows_again(configured):
    assert configured.run("run-batch").returncode == 0
    forget = configured.run("forget", "inventory")
    assert forget.returncode == 0, forget.stderr
    assert "forgetting inventory:auth" in forget.stdout
    dry = [line.split(None, 1) for line in configured.run("run-batch", "--dry-run").stdout.splitlines() if line[:1] != " "]
    assert ["inventory:auth", "forgotten"] in dry and ["inventory:billing", "forgotten"] in dry
    assert configured.run("run-batch").returncode == 0
    assert configured.runs() == {"inventory:auth": 2, "inventory:billing": 2, "extract-interfaces:auth": 2}


def test_errors_in_task_md_reach_doit_list_as_one_line(configured):
    configured.write(TASK + "<!-- parallel: lots -->\n")
    listing = configured.run("list")
    assert listing.returncode != 0
    assert listing.stderr.strip() == "ERROR: task.md:11: hint 'parallel' must be false or a whole number from 1 up, not 'lots'"


def test_listing_loads_no_template_engine(configured):
    """A listing only reads the plan: Jinja2 (26 ms of the 0.44 s `doit list --all` takes at
    10,000 items) is imported only where a template is checked or rendered. Neither a listing
    nor a dry run starts a process: psutil (15 ms) comes with a run alone, and not with every
    doit command batch-tasks' own replace (bare doit's `list` in a dodo.py's folder is ours).
    A dry run whose prompts passed their check with the same inputs before needs no Jinja2
    (prompt_check_stamp)."""
    listing = configured.run("list", "--all", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert listing.returncode == 0, listing.stderr
    imported = _imported(listing.stderr)
    assert "batch_tasks.tasks.batch" in imported and "jinja2" not in imported and "psutil" not in imported
    run = configured.run("run-batch", "--dry-run", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert run.returncode == 0 and "jinja2" in _imported(run.stderr)  # a dry run checks the prompts
    assert "psutil" not in _imported(run.stderr)
    again = configured.run("run-batch", "--dry-run", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert again.returncode == 0 and "jinja2" not in _imported(again.stderr)  # ...once, until they change
    assert again.stdout == run.stdout


def _imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}
