"""The files a text names (`` `src/auth.py` ``, spec-kit's "in src/models/user.py", superpowers'
`Modify: src/x.py:12-30` lines), and whether two paths may name one file: read from the
plan's text alone, so that a dialect can use it as well as the state's predictions (touches).
Plain data; touches nothing.

A path is compared by its end: `auth.py` is `src/auth.py`, and `src/auth.py` (relative to
the working folder, as a plan writes it) is `app/src/auth.py` (relative to the repository,
as git and the records say it); `src/a/index.ts` and `src/b/index.ts` are not one file.
"""

from __future__ import annotations

import posixpath
import re

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


def file_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]
