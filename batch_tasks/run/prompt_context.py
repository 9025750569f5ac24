"""What an item's prompt template is given for its next attempt (its batch, group, item, the
previous item's result, the last attempt to tell of, its history), and the dry check that
every template renders before anything runs. Reads the previous item's record; touches nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from ..agents import TRANSIENT, WAIT, retry
from ..errors import BatchError
from ..plan import prompt
from ..plan.item_job import ItemJob
from ..state.item_status import DONE, ItemStatus, read_status, read_statuses
from ..state.state import BatchState

if TYPE_CHECKING:  # a dry run's check has no attempts: their records' module comes with a run
    from ..state.records import Attempt


def prompt_context(job: ItemJob, state: BatchState, attempts: list[Attempt],
                   adjusted: retry.Adjustment | None = None, status_of=read_status) -> dict[str, Any]:
    """What the prompt template is given for an item's next attempt; `adjusted` may leave out
    the shared context (after an overflow) or add the item's history. `status_of`: how the
    previous item's records are read (read_status)."""
    context: dict[str, Any] = {
        "batch": _batch_part(job),
        "group": _group_part(job),
        "item": _item_part(job.item),
        "previous": None,
        "previous_attempt": None,
        "history": [],
    }
    if job.previous is not None:
        status = status_of(state.item(job.previous.group, job.previous.module))
        context["previous"] = _previous_part(job, status.result if status.kind == DONE else {})
    if attempts:
        last = attempt_to_tell_of(attempts).record()
        context["previous_attempt"] = {
            "number": last["attempt"], "class": last["failure_class"], "reason": last["reason"],
            "session_id": last["session_id"], "check_output": (last.get("check") or {}).get("tail", ""),
            "conflicts": (last.get("merge") or {}).get("conflicts", []),
            "cause": last["cause"],
            "adjusted": adjusted.text() if adjusted else "",
        }
    if adjusted is not None and adjusted.trim:  # the item's own instruction stays whole
        context["group"]["body"] = ""
        if context["previous"]:
            context["previous"].update(result_text="", result={})
    if adjusted is not None and adjusted.history:
        context["history"] = [{"number": a["attempt"], "class": a["failure_class"], "reason": a["reason"],
                               "check_output": (a.get("check") or {}).get("tail", ""),
                               "adjusted": (a.get("adjusted") or {}).get("text", "")}
                              for a in (attempt.record() for attempt in attempts)]
    return context


def _batch_part(job: ItemJob) -> dict[str, Any]:
    return {"title": job.batch_title, "path": str(job.taskfile), **job.plan_context}


def _group_part(job: ItemJob) -> dict[str, Any]:
    group = job.group
    return {"slug": group.slug, "title": group.title, "index": job.group_index, "body": group.body,
            "context": group.context}


def _item_part(item) -> dict[str, Any]:
    return {"key": item.key, "module": item.module, "text": item.text, "body": item.body,
            "instruction": item.instruction, "line": item.line, "parent": item.parent}


def _previous_part(job: ItemJob, record: dict[str, Any]) -> dict[str, Any]:
    previous = job.previous
    return {"group": previous.group, "group_title": job.previous_group_title, "module": previous.module,
            "instruction": previous.instruction, "result_text": record.get("result_text", ""), "result": record}


def attempt_to_tell_of(attempts: list[Attempt]) -> Attempt:
    """The attempt the next one is told of (and may go on with): the last, unless it failed
    before its work was checked (a server error, a hang, a limit) after one whose check
    failed or whose merge conflicted: that one's work is still what there is, and its
    check's output what to fix. (A resumed session that hit a server error is so.)"""
    for attempt in reversed(attempts):
        failure = attempt.record()["failure_class"]
        if failure in (retry.CHECK, retry.CONFLICT):
            return attempt
        if failure not in (TRANSIENT, WAIT):
            break
    return attempts[-1]


def check_prompts(jobs, state: BatchState, statuses: Mapping[str, ItemStatus] | None = None) -> None:
    """Render each item's first prompt: a template that asks for what is not there is one
    error before anything runs, not a failure of every item. What a template can ask for
    depends on its context's shape (which fields are there, empty or none), not on their
    words: each template is rendered once per shape its items give it, for the first such
    item, which is also the first item whose rendering would fail. STATUSES: every item's,
    as the batch's load read them (a dry run's, which takes no lock); else the previous
    items' are read now."""
    jobs = list(jobs)
    if statuses is None:
        statuses = read_statuses({job.previous.key: state.item(job.previous.group, job.previous.module)
                                  for job in jobs if job.previous is not None})
    # A first context has no attempt and no history: its shape is its other parts' shapes,
    # each taken from the part prompt_context builds, and the batch's and the group's once
    # for all their items (a job shares its batch's plan_context, and its group).
    rendered, batches, groups = set(), {}, {}
    for job in jobs:
        batch_key = (id(job.plan_context), job.batch_title, job.taskfile)
        if batch_key not in batches:
            batches[batch_key] = shape(_batch_part(job))
        if id(job.group) not in groups:
            groups[id(job.group)] = shape(_group_part(job))
        status = None if job.previous is None else statuses[job.previous.key]
        its_shape = (id(job.template), batches[batch_key], groups[id(job.group)], shape(_item_part(job.item)),
                     None if status is None else shape(_previous_part(job, status.result if status.kind == DONE else {})))
        if its_shape in rendered:
            continue
        rendered.add(its_shape)
        context = prompt_context(job, state, [], status_of=lambda _, status=status: status)
        try:
            prompt.render(job.template, context)
        except BatchError as error:
            raise BatchError(f"{error} (rendering the prompt of {job.item.key}, line {job.item.line})") from None


def shape(value: Any) -> Any:
    """What a template can tell of VALUE without reading its words: a dict's keys and their
    shapes, a list's members' shapes, anything else's type and whether it is empty."""
    kind = type(value)
    if kind is dict:  # leaves inline: a context has some thirty, and ten thousand items
        return tuple([(key, shape(member)) if type(member) in _CONTAINERS else (key, type(member), not member)
                      for key, member in value.items()])
    if kind in _CONTAINERS:
        return kind, tuple([shape(member) for member in value])
    return kind, not value


_CONTAINERS = (dict, list, tuple)
