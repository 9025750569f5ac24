"""A dry run's check of prompts, skipped when nothing it depends on changed since it last passed.

The check (prompt_context.check_prompts) renders each template once per shape of context its
items give it: it imports Jinja2 and takes every item's shape, a tenth of a dry run of 10,000
items. What those shapes and renders depend on is kept as one digest in
`prompts-checked.json` in the state folder, written when the check passed; the next dry
run whose digest is the same skips the check. A check that fails leaves no stamp, so a
template error is told, at its line, every time it is asked.

What the digest covers (any difference: the check runs again):
- the code (every .py file of the package: signing's code digest), Python's version, and
  Jinja2's installed files (its package's path, size and mtime: an upgrade changes them);
- the task file's real path and bytes (every item, its text and place; ticks too), its
  dialect and batch settings (--set and the settings from outside it included);
- what every prompt is given of the plan (plan_context: preamble, design documents, workdir);
- each group's template, by its source;
- the items checked, in order, and for each whose previous item is done, the shape of
  that item's result record (all a template is told of it; see prompt_context).

Signed with the user's key (see signing), as the no-op stamp is: a state folder someone else
made is never taken. An agent could forge it; that only keeps a dry run from telling of a
template error that the run itself still finds (a run checks its prompts, stamp or not).
Touches `prompts-checked.json`; reads the task file and Jinja2's package folder.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
from importlib.util import find_spec

from ..signing import code_digest, sign, signing_key
from ..state.item_status import DONE
from ..state.state import open_to_read, write_atomic
from ..tasks.doit_tasks import jobs_of
from .prompt_context import check_prompts, shape

NAME = "prompts-checked.json"


def check_once(batch, keys: list[str]) -> None:
    """check_prompts over the items KEYS, in that order (a dry run's: against the records
    its load read), unless a check of the same inputs passed before; raises BatchError as
    check_prompts does. Their jobs are made only if the check runs."""
    inputs = digest(batch, keys)
    secret = signing_key()
    stamp = os.path.join(batch.state.root, NAME)
    signature = None if inputs is None or secret is None else _sign(secret, inputs)
    if signature is not None and hmac.compare_digest(_read(stamp), signature):
        return
    jobs = jobs_of(batch, keys)
    check_prompts([jobs[key] for key in keys], batch.state, batch.statuses)
    if signature is not None:
        try:
            write_atomic(stamp, signature + "\n")
        except OSError:
            pass  # without a stamp the next dry run only checks again


def digest(batch, keys: list[str]) -> str | None:
    """What the check of the items KEYS depends on (see the module's docstring), or None if it
    cannot be had."""
    plan = batch.plan
    try:
        with open_to_read(str(plan.path)) as stream:
            data = stream.read()
        jinja = find_spec("jinja2")
        installed = os.stat(jinja.origin) if jinja is not None and jinja.origin else None
    except (OSError, ImportError, ValueError):
        return None
    if installed is None or batch.statuses is None:
        return None
    found = hashlib.sha256(code_digest())
    found.update(repr((sys.version, jinja.origin, installed.st_size, installed.st_mtime_ns)).encode())
    found.update(os.path.realpath(plan.path).encode("utf-8", "surrogateescape") + b"\0" + data + b"\0")
    found.update(repr((plan.dialect, plan.settings, batch.plan_context)).encode("utf-8", "surrogateescape"))
    for group in plan.groups:
        found.update(b"\0" + hashlib.sha256(batch.templates[group.slug].source.encode("utf-8", "surrogateescape")).digest())
    found.update("\n".join(keys).encode("utf-8", "surrogateescape") + b"\0")
    done = {key: status for key, status in batch.statuses.items() if status.kind == DONE}
    if done:  # what each item checked is told of its previous item's result: its shape
        wanted = set(keys)
        for item in plan.items():
            if item.key in wanted and (previous := plan.previous(item)) is not None and previous.key in done:
                found.update(f"{item.key}\0{shape(done[previous.key].result)!r}\n".encode("utf-8", "surrogateescape"))
    return found.hexdigest()


def _read(path: str) -> str:
    try:
        with open_to_read(path) as stream:
            return stream.read(200).decode("ascii", "replace").strip()
    except OSError:
        return ""


def _sign(secret: bytes, inputs: str) -> str:
    return sign(secret, "prompts-checked", inputs.encode())
