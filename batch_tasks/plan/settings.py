"""The batch's settings: front matter keys and group hints, each checked for its type.

Every setting is declared once in FIELDS. A field marked `group` may also be given
as a hint inside a group (`<!-- parallel: false -->`); a field marked `fingerprinted`
changes what an item's agent does, so changing it makes the item stale.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..agents import AGENTS
from ..agents.retry import DEFAULT_ADJUST, parse_adjust
from ..errors import SettingError
from ..setting_values import duration_seconds
from ..setting_values import flag as _flag
from ..setting_values import positive_int as _positive_int
from ..setting_values import whole_number as _whole_number
from . import protected_paths


def _argv(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list) or not value:
        raise SettingError("must be a non-empty list of arguments, e.g. [python3, tool.py, \"{module}\"]")
    if not all(isinstance(arg, (str, int, float)) and not isinstance(arg, bool) for arg in value):
        raise SettingError("must list only strings and numbers")
    return tuple(str(arg) for arg in value)


def _agent(value: Any) -> str:
    if not isinstance(value, str) or value not in AGENTS:
        raise SettingError(f"must be one of {', '.join(sorted(AGENTS))}, not {value!r}")
    return value


_retries = _whole_number(0)


def _parallel(value: Any) -> int:
    """`false` means one at a time; a number K means at most K at once."""
    if value is False:
        return 1
    try:
        return _positive_int(value)
    except SettingError:
        raise SettingError(f"must be false or a whole number from 1 up, not {value!r}") from None


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingError(f"must be a word or text, not {value!r}")
    return value


def _words(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not all(isinstance(word, str) for word in value):
        raise SettingError("must be a list of words, e.g. [Read, Edit, \"Bash(pytest:*)\"]")
    return tuple(value)


def _dollars(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SettingError(f"must be an amount of US dollars above 0, e.g. 25 or 0.5, not {value!r}")
    return float(value)


def _exit_codes(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in value):
        raise SettingError(f"must be a list of exit statuses, e.g. [75], not {value!r}")
    return tuple(value)


def _models(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(m, str) and m.strip() for m in value):
        raise SettingError(f"must list models, weaker to stronger, e.g. [claude-sonnet-4-5, claude-opus-4-1], not {value!r}")
    return tuple(value)


def _after(value: Any) -> str:
    if value != "all":
        raise SettingError(f"can only be `all` (wait for everything before), not {value!r}")
    return value


def _per_agent_limits(value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise SettingError("must map agents to how many may run at once, e.g. {claude: 6}")
    for agent, limit in value.items():
        if agent not in AGENTS:
            raise SettingError(f"names an unknown agent {agent!r} (known: {', '.join(sorted(AGENTS))})")
        _positive_int(limit)
    return dict(value)


def _relative_path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingError("must be a path to a file, relative to task.md")
    return value


# The task-list formats task.md may be read as (plan/dialects/ has one module each).
FORMATS = ("batch", "speckit", "kiro", "superpowers", "checklist", "phases", "execplan", "bmad", "todo-headings", "cursor")


def _format(value: Any) -> str:
    if value not in FORMATS:
        raise SettingError(f"must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


def _group_order(value: Any) -> str:
    if value not in ("sequential", "parallel"):
        raise SettingError(f"must be `sequential` (one at a time, in document order) or `parallel`, not {value!r}")
    return value


def _isolation(value: Any) -> str:
    if value not in ("none", "worktree"):
        raise SettingError(f"must be none or worktree, not {value!r}")
    return value


def _branch_name(value: Any) -> str:
    """Checked as a ref name by git itself when the batch loads (worktree.Isolation.validate).
    `refs/heads/main`, as git itself spells it, is the branch `main`."""
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise SettingError(f"must be a branch name such as batch/refactor, not {value!r}")
    if value.startswith("refs/") and not value.startswith("refs/heads/"):
        raise SettingError(f"must be a branch, not the ref {value!r}")
    return value.removeprefix("refs/heads/")


def _relative_globs(value: Any) -> tuple[str, ...]:
    """Relative to task.md; that each stays inside the repository is checked when the batch loads."""
    if not isinstance(value, list) or not all(isinstance(glob, str) and glob.strip() for glob in value):
        raise SettingError("must be a list of relative paths or globs, e.g. [.env, \"config/*.local\"]")
    for glob in value:
        if glob.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", glob):
            raise SettingError(f"must hold relative paths only, not {glob!r}")
    return tuple(value)


def _protected_globs(value: Any) -> tuple[str, ...]:
    """Relative to the repository; `[]` protects nothing."""
    if not isinstance(value, list) or not all(isinstance(glob, str) and glob.strip() for glob in value):
        raise SettingError("must be a list of globs, relative to the repository, e.g. [\"{check}\", \"tests/*\"]")
    for glob in value:
        if glob.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", glob):
            raise SettingError(f"must hold relative globs only, not {glob!r}")
    return tuple(value)


def _review(value: Any) -> dict[str, Any]:
    """`human` (a person decides, with `doit batch-review`), `agent` (a reviewer agent: the
    group's agent), or `{agent: claude, model: …, template: …}`."""
    if value == "human":
        return {"by": "human"}
    if value == "agent":
        return {"by": "agent"}
    if isinstance(value, dict) and set(value) <= {"agent", "model", "template"} and "agent" in value:
        reviewer = {"by": "agent", "agent": _agent(value["agent"])}
        reviewer.update({name: _text(value[name]) for name in ("model", "template") if name in value})
        return reviewer
    raise SettingError(f"must be human, agent, or {{agent: claude, model: …, template: …}}, not {value!r}")


def _land(value: Any) -> str:
    if value not in ("local", "pr", "pr-batch"):
        raise SettingError(f"must be local (the merge queue), pr (a pull request per item) or pr-batch (one for "
                           f"the integration branch), not {value!r}")
    return value


def _github_repo(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[\w.-]+/[\w.-]+", value):
        raise SettingError(f"must be OWNER/NAME, e.g. octo-org/widgets, not {value!r}")
    return value


SCHEDULER = re.compile(r"^(tcp|tls|ucx|inproc)://\S+$")


def scheduler_address(value: Any) -> str:
    if not isinstance(value, str) or not SCHEDULER.match(value):
        raise SettingError(f"must be a Dask scheduler's address such as tcp://HOST:8786, not {value!r}")
    return value


def _executor(value: Any) -> str | dict[str, str]:
    """`local` (this machine), or `{dask: tcp://HOST:8786}` (the workers of that scheduler)."""
    if value == "local":
        return value
    if isinstance(value, dict) and list(value) == ["dask"]:
        return {"dask": scheduler_address(value["dask"])}
    raise SettingError(f"must be local or {{dask: tcp://HOST:8786}}, not {value!r}")


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env_names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(name, str) and ENV_NAME.match(name) for name in value):
        raise SettingError(f"must be a list of environment variable names, e.g. [ANTHROPIC_API_KEY], not {value!r}")
    return tuple(value)


def _writable_paths(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(path, str) and path.startswith(("/", "~")) for path in value):
        raise SettingError(f"must be a list of absolute paths, e.g. [~/.cache/pip, /var/tmp/build], not {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class Field:
    name: str
    parse: Callable[[Any], Any]
    default: Any
    group: bool  # may be set per group with a hint
    fingerprinted: bool  # part of what makes an item's result current


FIELDS: Mapping[str, Field] = {
    field.name: field
    for field in (
        Field("agent", _agent, "command", group=True, fingerprinted=True),
        Field("command", _argv, None, group=True, fingerprinted=True),
        Field("parallel", _parallel, None, group=True, fingerprinted=False),
        # Scheduling: item-to-item edges, barriers, and per-agent limits across groups.
        Field("pipeline", _flag, False, group=True, fingerprinted=False),
        Field("after", _after, None, group=True, fingerprinted=False),
        Field("max_concurrent", _per_agent_limits, None, group=False, fingerprinted=False),
        # Two items predicted to touch one file do not run at once (dispatcher, touches).
        Field("keep_apart", _flag, True, group=False, fingerprinted=False),
        Field("template", _relative_path, None, group=True, fingerprinted=False),
        # Options of the agent CLIs, each mapped by its adapter to the CLI's own flag.
        Field("model", _text, None, group=True, fingerprinted=True),
        Field("allowed_tools", _words, None, group=True, fingerprinted=True),
        Field("permission_mode", _text, None, group=True, fingerprinted=True),
        Field("max_turns", _positive_int, None, group=True, fingerprinted=True),
        Field("extra_args", _argv, None, group=True, fingerprinted=True),
        Field("item_budget_usd", _dollars, None, group=True, fingerprinted=True),
        # Once the batch has spent this much, no new item starts.
        Field("budget_usd", _dollars, None, group=False, fingerprinted=False),
        # A group's first item starts alone, so that the others read the prompt cache it wrote.
        Field("prefill_cache", _flag, True, group=True, fingerprinted=False),
        # A cheaper model for the items left once the budget cannot hold their forecast at `model`.
        Field("fallback_model", _text, None, group=True, fingerprinted=False),
        # What happens when things go wrong (README: "When things go wrong").
        Field("retries", _retries, 2, group=True, fingerprinted=False),
        Field("retry_base", duration_seconds, 10.0, group=True, fingerprinted=False),
        Field("retry_cap", duration_seconds, 300.0, group=True, fingerprinted=False),
        Field("timeout", duration_seconds, None, group=True, fingerprinted=False),
        Field("idle_timeout", duration_seconds, None, group=True, fingerprinted=False),
        Field("transient_exit_codes", _exit_codes, (), group=True, fingerprinted=True),
        # A failed attempt's next one, adjusted by cause (retry.py); `escalate`: stronger models, in turn.
        Field("adjust", parse_adjust, DEFAULT_ADJUST, group=True, fingerprinted=False),
        Field("escalate", _models, None, group=True, fingerprinted=False),
        # How task.md is read (README: "Dialects"), and the order of the items within a group.
        Field("format", _format, None, group=False, fingerprinted=False),
        Field("group_order", _group_order, None, group=True, fingerprinted=False),
        # Isolation, checks and the merge queue (README: "Isolation, checks and the merge queue").
        Field("isolation", _isolation, "none", group=True, fingerprinted=True),
        Field("check", _argv, None, group=True, fingerprinted=True),
        Field("check_timeout", duration_seconds, 600.0, group=True, fingerprinted=False),
        Field("check_retries", _retries, 2, group=True, fingerprinted=False),
        # false: an item's work enters the merge queue from its agent, checked only on merged states.
        Field("own_check", _flag, True, group=True, fingerprinted=False),
        # The merge queue: merged-state checks at once (default: the number of cores), items one
        # check may take (1: each its own), reruns of a failing one before an item is blamed.
        Field("check_parallel", _positive_int, None, group=False, fingerprinted=False),
        Field("merge_batch", _positive_int, 4, group=False, fingerprinted=False),
        Field("check_flaky_retries", _retries, 1, group=False, fingerprinted=False),
        Field("worktree_setup", _argv, None, group=True, fingerprinted=False),
        Field("worktree_copy", _relative_globs, (), group=True, fingerprinted=False),
        # Where the work lands: a different branch starts from HEAD, without the work done so far.
        Field("integrate", _branch_name, None, group=False, fingerprinted=True),
        Field("allow_empty", _flag, False, group=True, fingerprinted=False),
        # What an item's work may not change (README: "A tick means the work landed").
        Field("protect", _protected_globs, protected_paths.DEFAULT, group=True, fingerprinted=False),
        # Who decides, after its check, whether an isolated item's work lands (README: "Review before it lands").
        Field("review", _review, None, group=True, fingerprinted=False),
        # Where a checked item lands: the local merge queue, or a pull request (README: "Review before it lands").
        Field("land", _land, "local", group=True, fingerprinted=False),
        Field("github_api", _text, None, group=False, fingerprinted=False),
        Field("github_repo", _github_repo, None, group=False, fingerprinted=False),
        Field("pr_base", _text, None, group=True, fingerprinted=False),
        Field("pr_poll", duration_seconds, 30.0, group=True, fingerprinted=False),
        # A command told of what a person cares about (README: "Review before it lands").
        Field("notify", _argv, None, group=False, fingerprinted=False),
        # Where agents and checks run, relative to task.md (default: see workdir.py).
        Field("workdir", _relative_path, None, group=False, fingerprinted=False),
        # Where attempts run (README: "Beyond one machine"): this machine, or a Dask cluster's
        # workers, which fetch from and push to `remote` and get only the `pass_env` variables.
        Field("executor", _executor, "local", group=False, fingerprinted=False),
        Field("remote", _text, None, group=False, fingerprinted=False),
        Field("pass_env", _env_names, (), group=False, fingerprinted=False),
        # Isolation beyond git (README: "A sandbox per agent, and ports of its own").
        Field("sandbox", _flag, False, group=True, fingerprinted=False),
        Field("sandbox_network", _flag, True, group=True, fingerprinted=False),
        Field("sandbox_write", _writable_paths, (), group=True, fingerprinted=False),
        Field("ports_per_item", _positive_int, 10, group=True, fingerprinted=False),
        Field("services", _argv, None, group=True, fingerprinted=False),
        Field("services_down", _argv, None, group=True, fingerprinted=False),
    )
}

# Front matter that other tools write about a document (spec-kit's template has
# `description:`, Copilot's plans `applyTo:`, ExecPlan tasks `plan_id:`): kept on the plan
# and ignored, never mistaken for a setting.
METADATA_KEYS = frozenset(
    """title description summary tags labels date created updated modified author authors owner
    status state feature branch spec specs version id name type kind category priority epic
    project milestone issue issues ticket input inputs prerequisites requirements design
    references links related progress phase phases estimate goal overview todos isproject
    applyto plan_id plan_file task_id""".split()
)


def near_miss(name: str, *, in_group: bool) -> str | None:
    """The setting (or hint) `name` was probably meant to be: `paralel` → `parallel`."""
    import difflib  # only for a mistake

    known = [f.name for f in FIELDS.values() if f.group or not in_group]
    spelled = name.lower().replace("-", "_")
    if spelled in known:
        return spelled
    close = difflib.get_close_matches(spelled, known, n=1, cutoff=0.75)
    return close[0] if close else None


def parse_setting(name: str, value: Any, *, in_group: bool) -> Any:
    """Check one setting; raise SettingError with a message that names it."""
    field = FIELDS.get(name)
    if field is None or (in_group and not field.group):
        where = "hint" if in_group else "setting"
        guess = near_miss(name, in_group=in_group)
        if guess is not None:
            raise SettingError(f"unknown {where} {name!r}: did you mean {guess!r}?")
        known = sorted(f.name for f in FIELDS.values() if f.group or not in_group)
        raise SettingError(f"unknown {where} {name!r} (known: {', '.join(known)})")
    if in_group and value is None and field.default is None:
        return None  # `<!-- model: null -->`: this group does without the batch's setting
    try:
        return field.parse(value)
    except SettingError as error:
        raise SettingError(f"{'hint' if in_group else 'setting'} {name!r} {error}") from None


def resolve(batch: Mapping[str, Any], hints: Mapping[str, Any]) -> dict[str, Any]:
    """The settings in force in one group: defaults, then the batch's, then the group's hints."""
    resolved = {name: field.default for name, field in FIELDS.items()}
    resolved.update(batch)
    resolved.update(hints)
    return resolved


def fingerprinted(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that change what an item's agent does, where they differ from their
    defaults: a setting added in a later release changes no fingerprint until it is used."""
    return {
        name: settings[name]
        for name, field in FIELDS.items()
        if field.fingerprinted and settings.get(name, field.default) != field.default
    }
