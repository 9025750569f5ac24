"""Which files an item will likely touch, predicted before it starts: the files its text
names (`` `src/auth.py` ``, spec-kit's "in src/models/user.py", superpowers' `Modify:
src/x.py:12-30` lines, a Kiro task's sub-bullets), and the files its own earlier attempts
and its module's earlier items changed, as their records say (what each committed, what
its merge landed, and the files a merge conflicted on). The dispatcher keeps two items that share one apart;
spec-kit's dialect cuts a run of `[P]` tasks where two name one file.

A path is compared by its end, as named_files says.

A prediction only orders starts: whatever a record says (the agent could write one), it
never decides whether an item runs, what is checked, or what lands.

Plain data: `Predictor` reads records through item_status; the rest reads nothing.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from ..plan.named_files import file_name, named, same_file
from ..plan.plan import Item, Plan
from . import records
from .item_status import read_status
from .state import BatchState


class Claims:
    """The files some items hold (those running), to ask who holds a file another would touch."""

    def __init__(self) -> None:
        self._by_name: dict[str, dict[str, set[str]]] = {}  # file name → path → the items holding it

    def hold(self, key: str, files: Iterable[str]) -> None:
        for path in files:
            self._by_name.setdefault(file_name(path), {}).setdefault(path, set()).add(key)

    def drop(self, key: str, files: Iterable[str]) -> None:
        for path in files:
            holders = self._by_name.get(file_name(path), {}).get(path)
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._by_name[file_name(path)][path]
                    if not self._by_name[file_name(path)]:
                        del self._by_name[file_name(path)]

    def clash(self, key: str, files: Iterable[str]) -> tuple[str, str] | None:
        """(another item holding one of FILES, that file as FILES names it), or None."""
        return next(self.clashes(key, files), None)

    def clashes(self, key: str, files: Iterable[str]) -> Iterator[tuple[str, str]]:
        """Each other item holding one of FILES, once, with the first such file as FILES names it."""
        told = {key}
        for path in files:
            for held, holders in self._by_name.get(file_name(path), {}).items():
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
