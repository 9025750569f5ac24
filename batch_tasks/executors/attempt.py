"""One attempt of one item: render its prompt, run its agent, say how it ended.

Its output goes to the item's output.log and its events to events.jsonl as they
come; while it runs, running.json holds what a later run needs to finish it if
this run is killed. Touches only the item's state folder (and starts its agent where the
executor says: the batch's workdir, or the same folder of the item's worktree).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ..agents import AGENTS, HANG, MAX_TURNS, PERMANENT, TOOL_LOOP, TRANSIENT, Outcome
from ..agents.base import ToolLoop
from ..errors import BatchError
from ..events import AgentEvent
from ..plan import prompt
from ..processes import process
from ..state import item_log
from ..state.records import Attempt
from ..state.state import write_json_atomic

if TYPE_CHECKING:
    from ..processes.agent_sandbox import Sandbox
    from ..redaction import Redactor
    from .seam import AttemptSpec, Reporter


def run_attempt(spec: AttemptSpec, reporter: Reporter, runner, stopping: threading.Event, redactor: Redactor,
                where: Path, environment: Mapping[str, str], sandbox: Sandbox | None = None) -> Attempt:
    """The agent runs in `where`, with `environment` under the batch's own variables, started by
    `runner` (the run's process.Supervisor here; a remote executor passes one of its own, of the
    same shape); in `sandbox`, if given (see agent_sandbox). `spec.continues`: the earlier session
    to go on with, if its agent can (told only what went wrong, in templates/resume.md.j2); else a
    fresh session, told all. `stopping` is the run's: an attempt stopped with it has no outcome."""
    job, folder, number, run_id = spec.job, spec.folder, spec.number, spec.run_id
    continues, running = spec.continues, spec.running
    agent = AGENTS[job.settings["agent"]]
    resume = continues if continues and agent.resumes(job.settings) else ""
    fresh = str(uuid.uuid4())
    session_id = agent.resumed_session_id(resume, fresh) if resume else fresh
    attempt = Attempt(number=number, session_id=session_id, started=time.time(), run_id=run_id)
    if resume:
        attempt.extra["resumed_session"] = resume  # the record says whose conversation this goes on with
    try:
        text = prompt.render(prompt.resume_template() if resume else job.template, spec.context)
    except BatchError as error:
        attempt.outcome = Outcome(ok=False, reason=str(error), failure_class=PERMANENT)
        attempt.finished = time.time()
        return attempt
    folder.write_prompt(text)

    key = job.item.key
    argv_context = {"module": job.item.module, "group": job.item.group, "prompt_file": folder.prompt,
                    "session_id": attempt.session_id, "resume_session": resume}
    env = {
        **environment,
        **agent.environment(job.settings),
        "BATCH_GROUP": job.item.group,
        "BATCH_MODULE": job.item.module,
        "BATCH_ITEM": key,
        "BATCH_PROMPT_FILE": folder.prompt,
        "BATCH_ATTEMPT": str(number),
        "BATCH_RUN_ID": run_id,
    }
    reader = agent.reader(job.settings)
    result_seen = threading.Event()
    last_line: list[float] = []  # when the agent last said anything: was it making progress when stopped?
    loop = ToolLoop(((job.settings.get("adjust") or {}).get(TOOL_LOOP) or {}).get("repeats") or 0)

    with folder.open_log() as log, folder.open_events() as event_log:

        def record_event(event: AgentEvent) -> None:
            event_log.write(item_log.line(run_id, number, event.kind, event.text, event.data))
            event_log.flush()
            reporter.event(event)

        def on_line(line: str) -> None:
            last_line[:] = [time.monotonic()]
            for event in reader.feed(line):
                loop.see(event)
                record_event(event)
                if event.kind == "result":
                    result_seen.set()

        def on_start(processes) -> None:
            # All a later run needs to finish this attempt's item, and to stop what it
            # started, if this run is killed.
            write_json_atomic(folder.running, {
                **running,
                "run_id": run_id,
                "attempt": number,
                "session_id": attempt.session_id,
                "attempt_started": attempt.started,
                "runner_pid": os.getpid(),
                **processes.record(),
            })
            reporter.started(attempt.started)

        log.write(item_log.attempt_header(key, number, run_id))
        log.flush()
        try:
            ended = runner.run(
                agent.argv(job.settings, argv_context),
                cwd=where,
                env=env,
                stdin=text.encode("utf-8"),
                log=log,
                on_line=on_line,
                on_start=on_start,
                # At once, the moment it exits: a run killed from then on can finish the item from its log.
                on_exit=lambda ended: record_event(AgentEvent(item_log.EXIT, data={"status": ended.status,
                                                                            "stopped_for": ended.stopped_for})),
                timeout=job.settings["timeout"],
                idle_timeout=job.settings["idle_timeout"],
                finished=result_seen.is_set,
                redact=redactor,
                exit_file=folder.exit,  # the watchdog's record of its exit, should this run die first
                sandbox=sandbox,
            )
        except process.StoppedError:
            return attempt
        except OSError as error:
            log.write(f"cannot start the agent: {error}\n".encode())
            attempt.outcome = Outcome(ok=False, reason=f"cannot start: {error.strerror or error}", failure_class=PERMANENT)
            return attempt
        finally:
            attempt.finished = time.time()
    attempt.exit_status = ended.status
    if stopping.is_set() and ended.status < 0:
        return attempt  # stopped with the run: no outcome
    # Stopped by `idle_timeout`, it was silent; by `timeout`, it may have been busy to the end.
    quiet_s = time.monotonic() - last_line[0] if last_line else None
    busy = quiet_s is not None and (job.settings["idle_timeout"] is None or quiet_s < job.settings["idle_timeout"])
    attempt.outcome = outcome_of(reader, ended.status, ended.stopped_for, result_seen.is_set(),
                                 round(quiet_s, 3) if busy else None)
    if not attempt.outcome.ok and loop.repeats and loop.seen and attempt.outcome.cause in (None, MAX_TURNS, HANG):
        # More turns or time would only go on failing so: the loop is the cause to meet.
        attempt.outcome.cause = TOOL_LOOP
        attempt.outcome.reason += f" (after {loop.call} failed {loop.run} times in a row: {loop.last[1]})"
    return attempt


def outcome_of(reader, status: int, stopped_for: str | None, said_result: bool,
               quiet_s: float | None = None) -> Outcome:
    """How an attempt ended, from its agent's word and from how its process ended; a hang
    says how long the agent had been silent when it was stopped (`quiet_s`), if not for that."""
    if stopped_for is None:
        return reader.outcome(status)
    if said_result:
        return reader.outcome(0)  # it said how it ended, then lingered: its word counts
    return Outcome(ok=False, reason=stopped_for, failure_class=TRANSIENT, cause=HANG,
                   data={} if quiet_s is None else {"quiet_s": quiet_s})
