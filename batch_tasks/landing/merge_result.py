"""What a landing through the merge queue says: merged, or not and why, with its evidence (the
commits, the files that landed with their lines added and removed, the files a conflict or a
failed merged state overlapped in, the merged state's check, the queue's record). Reads git;
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..processes.check import CheckResult
from ..repository.git import git

MERGED = "merged"
CONFLICT = "conflict"


@dataclass(frozen=True)
class FileChange:
    path: str
    added: int | None  # None for a binary file
    removed: int | None


@dataclass(frozen=True)
class MergeResult:
    status: str  # MERGED or CONFLICT
    reason: str
    base: str  # the commit the item's branch was made from
    item_commit: str
    integration_before: str
    merge_commit: str | None = None
    files: tuple[FileChange, ...] = ()  # what landed on the integration branch
    conflicts: tuple[str, ...] = ()  # files both sides changed: for the agent's next attempt
    check: CheckResult | None = None  # the check on the merged state, when it ran
    queue: dict[str, Any] | None = None  # the checks it took part in, with whom, and its bisections

    @property
    def merged(self) -> bool:
        return self.status == MERGED

    def record(self) -> dict[str, Any]:
        """The evidence for the item's result record."""
        return {
            "status": self.status,
            "reason": self.reason,
            "base_commit": self.base,
            "item_commit": self.item_commit,
            "integration_before": self.integration_before,
            "merge_commit": self.merge_commit,
            "files": [{"path": f.path, "added": f.added, "removed": f.removed} for f in self.files],
            "conflicts": list(self.conflicts),
            "merged_state_check": self.check.record() if self.check else None,
            "queue": self.queue,
        }


def numstat(before: str, after: str, cwd) -> tuple[FileChange, ...]:
    changes = []
    for entry in git("diff", "--numstat", "-z", "--no-renames", before, after, "--", cwd=cwd).fields():
        added, removed, path = entry.split("\t", 2)
        changes.append(FileChange(path, None if added == "-" else int(added), None if removed == "-" else int(removed)))
    return tuple(changes)


def overlap(base: str, before: str, item: str, cwd) -> tuple[str, ...]:
    """The files changed both on the integration branch since the item's base and by the item."""
    theirs = set(git("diff", "--name-only", "-z", "--no-renames", base, before, "--", cwd=cwd).fields())
    ours = git("diff", "--name-only", "-z", "--no-renames", base, item, "--", cwd=cwd).fields()
    return tuple(path for path in ours if path in theirs)
