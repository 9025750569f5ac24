"""An item's steps and states are spelled once: in state/item_machine.py, as data. The other
modules (the views, the runner, recovery, history) take them from there rather than spell them
again, so that a name cannot drift in one place and leave a reader of another behind. Read
from the source: the names of more than one word are those that could be nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

import batch_tasks
from batch_tasks.state import item_machine

PACKAGE = Path(batch_tasks.__file__).parent


def test_no_module_but_the_item_machine_spells_a_state_of_its():
    names = {name for name in item_machine.STATES if " " in name}
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == Path(item_machine.__file__):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                spelled.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
    assert not spelled, "\n".join(spelled)


def test_each_landing_step_leads_to_one_state_wherever_it_is_taken():
    leads_to = {step: {after for (_, event), after in item_machine.TRANSITIONS.items() if event == step}
                for step in item_machine.LANDING_STEPS}
    assert all(len(states) == 1 for states in leads_to.values()), leads_to
