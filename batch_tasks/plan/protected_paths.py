"""Paths an item's work may not change: the check's own files, the CI configuration, `protect:`.

An agent that wants to finish can make its check pass by rewriting the check. The
`protect` setting (front matter or group hint) lists globs, relative to the repository,
read as Python's fnmatch reads them (`*` also crosses `/`: `tests/*` is all of tests).
Its default, which `protect: []` turns off, is DEFAULT: `{check}` (each argument of the
item's check that names a file or folder of the repository: `tests/{module}` for the
item `csv` protects `tests/csv` and all in it) and the usual places of CI
configuration. A changed path that a glob matches is a violation, unless the item's
own text (its line and body) names that path: an item asked to fix a test may.

Pure functions on plain data: the lifecycle gives the paths its work changed.
"""

from __future__ import annotations

import posixpath
from fnmatch import fnmatchcase
from typing import Iterable

CHECK = "{check}"
DEFAULT = (
    CHECK,
    ".github/workflows/*", ".github/actions/*", ".gitlab-ci.yml", ".gitlab-ci/*", ".circleci/*", ".travis.yml",
    "azure-pipelines.yml", ".buildkite/*", "Jenkinsfile", ".pre-commit-config.yaml",
)


def globs(protect: Iterable[str], check_paths: Iterable[str]) -> list[str]:
    """The globs of a `protect` setting, with `{check}` standing for CHECK_PATHS (repository-relative
    files and folders the check names: a folder stands for all in it)."""
    found = []
    for glob in protect:
        if glob == CHECK:
            found += [pattern for path in check_paths for pattern in (path, f"{path}/*")]
        else:
            found.append(glob)
    return found


def check_paths(argv: Iterable[str], folder: str, worktree: str) -> list[str]:
    """The repository-relative paths that the arguments of a check (placeholders replaced) may name:
    each argument that is not an option, from FOLDER (task.md's, in the repository) or, if
    absolute, from the WORKTREE's top; none that leaves the repository."""
    found = []
    for argument in argv:
        if argument.startswith("-") or not argument.strip():
            continue
        if posixpath.isabs(argument):
            path = posixpath.relpath(posixpath.normpath(argument), worktree)
        else:
            path = posixpath.normpath(posixpath.join(folder, argument))
        if path != "." and not path.startswith("../") and path != "..":
            found.append(path)
    return found


def violations(changed: Iterable[str], item_text: str, protect: Iterable[str]) -> list[str]:
    """The changed paths (repository-relative) that a glob of PROTECT matches and ITEM_TEXT does not name."""
    patterns = list(protect)
    return [path for path in changed
            if any(fnmatchcase(path, pattern) for pattern in patterns) and path not in item_text]
