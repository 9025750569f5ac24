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
and touches nothing.
"""

from __future__ import annotations

import subprocess

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
        found = subprocess.run(["git", "config", "-z", "--list"], cwd=cwd, stdin=subprocess.DEVNULL,
                               capture_output=True, env=env)
        for section, driver in sorted(_driver_names(found.stdout.decode("utf-8", "surrogateescape"))):
            settings += [(f"{section}.{driver}.{key}", value)
                         for (s, key), value in DRIVER_SETTINGS.items() if s == section]
    try:
        count = int(env.get("GIT_CONFIG_COUNT", "0"))
    except ValueError:
        count = 0
    guarded = dict(env)
    for number, (key, value) in enumerate(settings, start=count):
        guarded[f"GIT_CONFIG_KEY_{number}"], guarded[f"GIT_CONFIG_VALUE_{number}"] = key, value
    guarded["GIT_CONFIG_COUNT"] = str(count + len(settings))
    return guarded


def runs_no_driver(args: tuple[str, ...]) -> bool:
    """Commands that read or write refs only, as batch-tasks calls them (no patch, no checkout,
    no transport): the configuration need not be read for them, which spares a process."""
    return args[0] in REFS_ONLY or args[:2] in (("worktree", "list"), ("worktree", "prune"))


def _driver_names(listing: str) -> set[tuple[str, str]]:
    """(section, name) of each `section.name.key` setting of a driver section in a `config -z --list`."""
    names = set()
    for entry in listing.split("\0"):
        key = entry.partition("\n")[0]
        section, dot, rest = key.partition(".")
        driver, dot2, _ = rest.rpartition(".")
        if dot and dot2 and section.lower() in SECTIONS and driver:
            names.add((section.lower(), driver))
    return names
