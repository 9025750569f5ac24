"""Which files an item will likely touch, predicted before it starts: the files its text
names (`` `src/auth.py` ``, spec-kit's "in src/models/user.py", superpowers' `Modify:
src/x.py:12-30` lines, a Kiro task's sub-bullets), and the files its own earlier attempts
and its module's earlier items changed, as their records say (what each committed, what
its merge landed, and the files a merge conflicted on). The dispatcher keeps two items that share one apart;
spec-kit's dialect cuts a run of `[P]` tasks where two name one file.

A path is compared by its end: `auth.py` is `src/auth.py`, and `src/auth.py` (relative to
the working folder, as a plan writes it) is `app/src/auth.py` (relative to the repository,
as git and the records say it); `src/a/index.ts` and `src/b/index.ts` are not one file.

A prediction only orders starts: whatever a record says (the agent could write one), it
never decides whether an item runs, what is checked, or what lands.

Plain data: `Predictor` reads records through item_status; the rest reads nothing.
"""

from __future__ import annotations

import posixpath
import re
from typing import Iterable, Iterator

from . import records
from .item_status import read_status
from .plan import Item, Plan
from .state import BatchState

# A token that may be a path: word characters, dots, dashes, `@`, `+`, and slashes between
# them; not the rest of an absolute path, a URL or a template's `{id}.csv` (nothing of the
# kind may come before it). A superpowers line's `:12-30` (the lines to change) is no part of it.
TOKEN = re.compile(r"(?<![\w/.@+:})\]>$%-])((?:[\w.@+-]+/)*[\w.@+-]*[\w])(?::\d+(?:-\d+)?)?")
# File names a path may end in without a folder: extensions of source, configuration and text files.
EXTENSIONS = frozenset("""
    py pyi pyx ipynb js mjs cjs jsx ts mts cts tsx vue svelte astro json jsonc json5 jsonl yaml yml toml ini
    cfg conf env properties md mdx rst txt adoc tex html htm css scss sass less xml svg csv tsv sql prisma
    graphql gql proto sh bash zsh fish ps1 bat rs go mod sum java kt kts scala groovy gradle c h cc cpp cxx
    hpp hh cs fs vb swift m mm rb erb php pl lua r dart ex exs erl hrl hs ml elm clj zig nim jl tf tfvars
    hcl lock nix cmake mk dockerfile
""".split())
NAMES = frozenset({"Makefile", "Dockerfile", "Gemfile", "Rakefile", "Procfile", "Justfile", "Jenkinsfile",
                   "CMakeLists.txt", "LICENSE", "CODEOWNERS"})
# Names of things, written as files: two items that mention Next.js do not edit one file.
NOT_FILES = frozenset({"node.js", "next.js", "nuxt.js", "vue.js", "react.js", "express.js", "nest.js",
                       "three.js", "d3.js", "chart.js", "ember.js", "alpine.js", "socket.io"})
EXTENSION = re.compile(r"\.([A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*)$")  # with a letter: `v1.2` has none


def named(text: str) -> list[str]:
    """The files a text names, each once, in the order named."""
    found: dict[str, None] = {}
    for match in TOKEN.finditer(text):
        path = _as_file(match.group(1))
        if path is not None:
            found.setdefault(path, None)
    return list(found)


def _as_file(token: str) -> str | None:
    """The token as a relative file path, or None if it does not look like one."""
    token = token.rstrip(".")
    parts = [part for part in token.split("/") if part not in ("", ".", "..")]
    if not parts:
        return None
    name = parts[-1]
    if name.lower() in NOT_FILES:
        return None
    ending = EXTENSION.search(name)
    if name in NAMES or (name.startswith(".") and len(name) > 1 and name[1:].replace("-", "").isalnum()):
        pass  # Makefile, .gitignore
    elif ending is None or ending.start() == 0:
        return None
    elif len(parts) == 1 and ending.group(1).lower() not in EXTENSIONS:
        return None  # `np.array`, `e.g`, `config.schema`: words with dots, not files
    return posixpath.join(*parts)


def same_file(one: str, other: str) -> bool:
    """Whether two paths may name one file: equal, or one the other's end, folder by folder."""
    if one == other:
        return True
    shorter, longer = sorted((one, other), key=len)
    return longer.endswith("/" + shorter)


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


class Claims:
    """The files some items hold (those running), to ask who holds a file another would touch."""

    def __init__(self) -> None:
        self._by_name: dict[str, dict[str, set[str]]] = {}  # file name → path → the items holding it

    def hold(self, key: str, files: Iterable[str]) -> None:
        for path in files:
            self._by_name.setdefault(_name(path), {}).setdefault(path, set()).add(key)

    def drop(self, key: str, files: Iterable[str]) -> None:
        for path in files:
            holders = self._by_name.get(_name(path), {}).get(path)
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._by_name[_name(path)][path]
                    if not self._by_name[_name(path)]:
                        del self._by_name[_name(path)]

    def clash(self, key: str, files: Iterable[str]) -> tuple[str, str] | None:
        """(another item holding one of FILES, that file as FILES names it), or None."""
        return next(self.clashes(key, files), None)

    def clashes(self, key: str, files: Iterable[str]) -> Iterator[tuple[str, str]]:
        """Each other item holding one of FILES, once, with the first such file as FILES names it."""
        told = {key}
        for path in files:
            for held, holders in self._by_name.get(_name(path), {}).items():
                if holders - told and same_file(path, held):
                    for other in sorted(holders - told):
                        told.add(other)
                        yield other, path


class Predictor:
    """The files an item will likely touch: those its text names, and those its own records
    and its module's earlier items' records say were changed, read when asked (the runner
    asks as an item becomes ready, when its module's earlier items of the run have landed)."""

    def __init__(self, plan: Plan, state: BatchState):
        self._state = state
        self._modules: dict[str, list[Item]] = {}  # module → its items that name it, in plan order
        for item in plan.items():
            if item.module_given:
                self._modules.setdefault(item.module, []).append(item)

    def __call__(self, item: Item) -> frozenset[str]:
        earlier = []
        for kin in self._modules.get(item.module, ()) if item.module_given else ():
            if kin.key == item.key:
                break
            earlier += _recorded(self._state, kin.group, kin.module)
        return frozenset(named(item.instruction)).union(_recorded(self._state, item.group, item.module), earlier)


def predict(plan: Plan, state: BatchState, keys: Iterable[str] | None = None) -> dict[str, frozenset[str]]:
    """What each item of KEYS (all, if None) will likely touch, where anything is predicted."""
    predictor, wanted = Predictor(plan, state), None if keys is None else set(keys)
    return {item.key: files for item in plan.items()
            if (wanted is None or item.key in wanted) and (files := predictor(item))}


def _recorded(state: BatchState, group: str, module: str) -> list[str]:
    status = read_status(state.item(group, module))
    return [path for record in (status.result, status.failure) if record for path in records.files_of(record)
            if path.isprintable()]  # a name with a line break in it would break the lines that show it
