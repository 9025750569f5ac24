"""What keeps git configuration from running a program through batch-tasks' own git calls.

The agents run as the user: they can write the repository's `.git/config`, its
`info/attributes` and hooks, the worktree's `.gitattributes` and the user's
`~/.gitconfig`. Git 2.39 has no switch to ignore them, so every call the runner makes
gets, as command-line configuration (GIT_CONFIG_COUNT and its pairs: they win over
every file, and take any name a driver may have), a harmless value for each setting
that names a program:

- fixed ones: hooks, fsmonitor, ssh, askpass, credential helpers, signatures, the
  `ext::` transport;
- per driver, the driver names read from the configuration as it is at the call
  (`git config --list`, which runs nothing): clean/smudge filters off, diff drivers'
  textconv `cat` (the file as it is) and external command off, merge drivers `false`
  (the file conflicts: nothing lands that a driver made), a remote's upload-pack and
  receive-pack git's own.

It runs `git config --list` in the call's folder (reading configuration runs nothing)
and touches nothing. A listing is kept per folder with the contents of every file it came
from or could come from (system, global, the repository's and the worktree's config, every
include named, the `.git` entries that say which repository the folder is in): while those
read the same, git would read the same, and the listing is reused without a process; a
byte changed in any of them, or a file appearing, lists again before the call.
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

FIXED = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.sshCommand", "ssh"),
    ("core.askPass", ""),
    ("credential.helper", ""),  # an empty helper empties the list of helpers
    ("commit.gpgSign", "false"),
    ("merge.verifySignatures", "false"),
    ("log.showSignature", "false"),
    ("protocol.ext.allow", "never"),
    ("uploadpack.packObjectsHook", "git"),  # `git pack-objects …`: what runs without one
)
# The settings of a named driver (`<section>.<name>.<key>`), and the harmless value of each.
DRIVER_SETTINGS = {
    ("filter", "clean"): "",  # an empty command is no filter
    ("filter", "smudge"): "",
    ("filter", "process"): "",
    ("filter", "required"): "false",
    ("diff", "textconv"): "cat",
    ("diff", "command"): "false",
    ("diff", "cachetextconv"): "false",
    ("merge", "driver"): "false",
    ("remote", "uploadpack"): "git-upload-pack",
    ("remote", "receivepack"): "git-receive-pack",
    ("remote", "vcs"): "",
}
SECTIONS = frozenset(section for section, _ in DRIVER_SETTINGS)
REFS_ONLY = frozenset({"rev-parse", "update-ref", "symbolic-ref", "merge-base", "branch", "check-ref-format",
                       "for-each-ref", "init"})


def environment(args: tuple[str, ...], cwd, env: dict[str, str]) -> dict[str, str]:
    """ENV for `git ARGS` in CWD, with FIXED and, unless the command runs no driver, a harmless
    value for every driver setting configured there now, added to its command-line configuration."""
    settings = list(FIXED)
    if not runs_no_driver(args):
        for section, driver in sorted(driver_names(cwd, env)):
            settings += [(f"{section}.{driver}.{key}", value)
                         for (s, key), value in DRIVER_SETTINGS.items() if s == section]
    return with_settings(env, settings)


def with_settings(env: dict[str, str], settings: list[tuple[str, str]]) -> dict[str, str]:
    """ENV with SETTINGS added to its command-line configuration (GIT_CONFIG_COUNT and its pairs),
    after those it has: given so, a value is not in git's argv, which `ps` shows to every user."""
    try:
        count = int(env.get("GIT_CONFIG_COUNT", "0"))
    except ValueError:
        count = 0
    added = dict(env)
    for number, (key, value) in enumerate(settings, start=count):
        added[f"GIT_CONFIG_KEY_{number}"], added[f"GIT_CONFIG_VALUE_{number}"] = key, value
    added["GIT_CONFIG_COUNT"] = str(count + len(settings))
    return added


def runs_no_driver(args: tuple[str, ...]) -> bool:
    """Commands that read or write refs only, as batch-tasks calls them (no patch, no checkout,
    no transport): the configuration need not be read for them, which spares a process."""
    return args[0] in REFS_ONLY or args[:2] in (("worktree", "list"), ("worktree", "prune"))


@dataclass(frozen=True)
class Listing:
    """The driver names configured for a folder, and what they were read from."""
    sources: tuple[str, ...]  # every file whose contents decide the listing
    contents: tuple[bytes | None, ...] | None  # theirs before the listing; None: not to be trusted
    names: frozenset[tuple[str, str]]


_listings: dict[tuple, Listing] = {}
_listings_lock = threading.Lock()
# Variables that change which configuration files git reads, or what it reads there.
CONFIG_VARIABLES = ("HOME", "XDG_CONFIG_HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_NOSYSTEM",
                    "GIT_CONFIG", "GIT_CONFIG_PARAMETERS", "GIT_CEILING_DIRECTORIES")


def driver_names(cwd, env: dict[str, str]) -> frozenset[tuple[str, str]]:
    """(section, name) of every driver configured for a git call in CWD with ENV, as git would read it now."""
    key = (os.path.abspath(cwd), tuple((name, env.get(name)) for name in CONFIG_VARIABLES),
           tuple(sorted((name, value) for name, value in env.items() if name.startswith("GIT_CONFIG_KEY_")
                        or name.startswith("GIT_CONFIG_VALUE_") or name == "GIT_CONFIG_COUNT")))
    known = _listings.get(key)
    if known is not None and known.contents is not None and _contents(known.sources) == known.contents:
        return known.names
    # The sources are read before the listing, so that a change made meanwhile shows at the next call.
    guessed = known.sources if known is not None else _sources(cwd, env, [], may_run=False)
    before = _contents(guessed)
    done = subprocess.run(["git", "config", "-z", "--show-origin", "--list"], cwd=cwd, stdin=subprocess.DEVNULL,
                          capture_output=True, env=env)
    listing = _entries(done.stdout.decode("utf-8", "surrogateescape"))
    sources = _sources(cwd, env, listing, may_run=True)
    trusted = set(sources) <= set(guessed)  # else a source was not read before: read again next time
    with _listings_lock:
        if len(_listings) > 4096:
            _listings.clear()
        _listings[key] = Listing(guessed if trusted else sources, before if trusted else None,
                                 _driver_names(listing))
    return _listings[key].names


def _sources(cwd, env: dict[str, str], listing: list[tuple[str, str, str]], may_run: bool) -> tuple[str, ...]:
    """Every file whose contents decide what `git config --list` in CWD shows (LISTING: what it showed)."""
    folder = Path(os.path.abspath(cwd))
    sources = [*_user_files(env), *_includes(listing, cwd, env)]
    dot_git = folder / ".git"
    if os.path.isdir(dot_git):
        git_dir = dot_git
    elif os.path.isfile(dot_git):  # a linked worktree's: `gitdir: <its folder in the repository>`
        try:
            named = dot_git.read_text("utf-8", "surrogateescape").removeprefix("gitdir:").strip()
        except OSError:
            named = ""
        git_dir = folder / named
    elif may_run:  # a folder below the top: git finds the repository (two processes then, not one)
        done = subprocess.run(["git", "rev-parse", "--absolute-git-dir", "--show-toplevel"], cwd=cwd,
                              stdin=subprocess.DEVNULL, capture_output=True, env=env)
        located = done.stdout.decode("utf-8", "surrogateescape").splitlines()
        top = Path(located[1]) if len(located) > 1 else Path("/")
        sources += [above / ".git" for above in _folders_between(folder, top)]
        git_dir = Path(located[0]) if located else None
    else:
        return ()
    if git_dir is not None:
        common = git_dir
        try:
            common = git_dir / (git_dir / "commondir").read_text("utf-8", "surrogateescape").strip()
        except OSError:
            pass
        sources += [dot_git, common / "config", git_dir / "config.worktree", git_dir / "commondir"]
        if any(key.lower().startswith("includeif.onbranch:") for _, key, _ in listing):
            sources.append(git_dir / "HEAD")  # the branch decides what is included
    return tuple(dict.fromkeys(os.path.normpath(path) for path in sources))


def _user_files(env: dict[str, str]) -> list[str]:
    """The system and global configuration files git may read with ENV, whether they exist or not."""
    home = env.get("HOME", "")
    globals_ = [env["GIT_CONFIG_GLOBAL"]] if env.get("GIT_CONFIG_GLOBAL") else [
        os.path.join(env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "git", "config"),
        os.path.join(home, ".gitconfig")]
    return [env.get("GIT_CONFIG_SYSTEM") or _system_file(), *globals_]


@lru_cache(maxsize=1)
def _system_file() -> str:
    """Where this git reads its system configuration: it says so to an editor that only prints it."""
    env = {**os.environ, "GIT_EDITOR": "echo"}
    env.pop("GIT_CONFIG_SYSTEM", None)
    done = subprocess.run(["git", "config", "--system", "--edit"], cwd="/", stdin=subprocess.DEVNULL,
                          capture_output=True, env=env)
    return done.stdout.decode("utf-8", "surrogateescape").strip() or "/etc/gitconfig"


def _includes(listing: list[tuple[str, str, str]], cwd, env: dict[str, str]) -> list[str]:
    """Every file an `include.path` or `includeIf.*.path` of LISTING names, whether its condition
    holds now or not (its condition's inputs are sources too)."""
    found = []
    for origin, key, value in listing:
        if not (key == "include.path" or key.startswith("includeif.") and key.endswith(".path")):  # as git prints them
            continue
        if value.startswith("~/"):
            value = os.path.join(env.get("HOME", ""), value[2:])
        if not os.path.isabs(value) and origin.startswith("file:"):
            value = os.path.join(os.path.dirname(os.path.join(os.path.abspath(cwd), origin[5:])), value)
        found.append(value)
    return found


def _entries(listing: str) -> list[tuple[str, str, str]]:
    """(origin, key, value) of each entry of a `config -z --show-origin --list` (git prints a key's
    section and name in lower case, its subsection as written)."""
    fields = listing.split("\0")
    entries = []
    for origin, entry in zip(fields[::2], fields[1::2]):
        key, _, value = entry.partition("\n")
        entries.append((origin, key, value))
    return entries


def _folders_between(folder: Path, top: Path) -> list[Path]:
    """FOLDER and each folder above it up to TOP (a `.git` made in one of them moves the repository)."""
    found = [folder]
    while folder != top and folder.parent != folder:
        folder = folder.parent
        found.append(folder)
    return found


def _contents(paths: tuple[str, ...]) -> tuple[bytes | None, ...]:
    """Each file's bytes; a mark for a folder (a `.git` folder); None where nothing is."""
    found = []
    for path in paths:
        try:
            with open(path, "rb") as file:
                found.append(file.read())
        except IsADirectoryError:
            found.append(b"folder")
        except OSError:
            found.append(None)
    return tuple(found)


def _driver_names(listing: list[tuple[str, str, str]]) -> frozenset[tuple[str, str]]:
    """(section, name) of each `section.name.key` setting of a driver section in LISTING."""
    names = set()
    for _, key, _ in listing:
        section, dot, rest = key.partition(".")
        driver, dot2, _ = rest.rpartition(".")
        if dot and dot2 and section.lower() in SECTIONS and driver:
            names.add((section.lower(), driver))
    return frozenset(names)
