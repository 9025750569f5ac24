"""The landing steps' protocols (landing/landing_item.py) say exactly what the steps use of an
item's run and of the whole run: every member the steps reach is declared, and every member
declared is reached by a step that is given that protocol. Read from the steps' source."""

from __future__ import annotations

import ast
from pathlib import Path

from batch_tasks.landing import landing_item

LANDING = Path(landing_item.__file__).parent


def members(protocol: type) -> set[str]:
    """A protocol's attributes and methods, its own and its bases'."""
    found: set[str] = set()
    for cls in protocol.__mro__:
        if cls.__module__ == landing_item.__name__:
            found |= set(cls.__dict__.get("__annotations__", {}))
            found |= {name for name, value in vars(cls).items() if callable(value) and not name.startswith("_")}
    return found


def own(protocol: type) -> set[str]:
    return set(protocol.__dict__.get("__annotations__", {})) | {
        name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")}


def uses() -> dict[str, tuple[set[str], set[str]]]:
    """Per protocol an `item_run` parameter is annotated with: the members the functions given it
    reach of the item's run, and of its `run` (directly, or through a local name bound to it)."""
    found: dict[str, tuple[set[str], set[str]]] = {}
    for path in sorted(LANDING.glob("*.py")):
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef):
                continue
            given = {arg.arg: arg.annotation for arg in function.args.args}
            if "item_run" not in given or given["item_run"] is None:
                continue
            protocol = ast.literal_eval(given["item_run"]) if isinstance(given["item_run"], ast.Constant) \
                else ast.unparse(given["item_run"])
            item_members, run_members = found.setdefault(protocol, (set(), set()))
            run_names = {"item_run.run"}
            for node in ast.walk(function):  # local names bound to item_run.run (one at a time, or unpacked)
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        pairs = zip(target.elts, node.value.elts) if isinstance(target, ast.Tuple) and \
                            isinstance(node.value, ast.Tuple) else [(target, node.value)]
                        for name, value in pairs:
                            if isinstance(name, ast.Name) and ast.unparse(value) == "item_run.run":
                                run_names.add(name.id)
            for node in ast.walk(function):
                if isinstance(node, ast.Attribute):
                    if ast.unparse(node.value) == "item_run":
                        item_members.add(node.attr)
                    elif ast.unparse(node.value) in run_names:
                        run_members.add(node.attr)
    return found


def test_the_landing_steps_protocols_hold_what_the_steps_use_and_no_more():
    found = uses()
    assert set(found) == {"LandingItem", "ReviewedItem"}, found.keys()
    landing_uses, landing_run_uses = found["LandingItem"]
    review_uses, review_run_uses = found["ReviewedItem"]
    item, reviewed = landing_item.LandingItem, landing_item.ReviewedItem
    run, review_run = landing_item.LandingRun, landing_item.ReviewRun
    # What is reached is declared, in the protocol the step is given.
    assert review_uses <= members(reviewed), review_uses - members(reviewed)
    assert review_run_uses <= members(review_run), review_run_uses - members(review_run)
    assert landing_uses <= members(item), landing_uses - members(item)
    assert landing_run_uses <= members(run), landing_run_uses - members(run)
    # What is declared is reached: a review step's needs by some step, a landing step's own by a landing step.
    assert members(reviewed) <= review_uses | landing_uses, members(reviewed) - review_uses - landing_uses
    assert own(item) - {"run"} <= landing_uses, own(item) - landing_uses
    assert members(review_run) <= review_run_uses | landing_run_uses
    assert own(run) <= landing_run_uses, own(run) - landing_run_uses
