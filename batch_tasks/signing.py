"""What batch-tasks keys and signs its own files with: the code's digest, the user's key, and the signature.

A cache (the plan cache, the no-op's stamp) is keyed on the code that wrote it, and what
batch-tasks keeps for itself (caches, stamps, a review's verdict) is signed with a secret of
the user's, `$XDG_CACHE_HOME/batch-tasks/plan-cache.key` (else `~/.cache/…`), made once, kept
outside any workspace. Light to import: a no-op answered from its stamp needs both and
nothing of the plan. Touches that key file only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache

from . import __version__


@lru_cache(maxsize=1)
def code_digest() -> bytes:
    """Every .py file of the package, by path and lstat (inode, size, times: as Python itself
    tells a changed source from its compiled copy, and without reading 160 files), and its version."""
    package = os.path.dirname(os.path.abspath(__file__))
    found = []
    for folder, folders, files in os.walk(package):
        folders[:] = [name for name in folders if name != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                info = os.lstat(path)
                found.append((os.path.relpath(path, package), info.st_ino, info.st_size, info.st_mtime_ns,
                              info.st_ctime_ns))
    return hashlib.sha256(f"{__version__}\0{sorted(found)!r}".encode()).digest()


def signing_key() -> bytes | None:
    """The user's key for signing caches, made on first use; None if it cannot be had."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "batch-tasks")
    key_file = os.path.join(folder, "plan-cache.key")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        try:
            fd = os.open(key_file, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            try:
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except FileExistsError:  # made by a process beside us just now
                fd = os.open(key_file, os.O_RDONLY | os.O_NOFOLLOW)
            else:
                with os.fdopen(fd, "wb") as stream:
                    stream.write(os.urandom(32))
                fd = os.open(key_file, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as stream:
            key = stream.read(64)
    except OSError:
        return None
    return key if len(key) == 32 else None


def sign(secret: bytes, label: str, data: bytes) -> str:
    """DATA's signature (HMAC-SHA256) with the user's SECRET, under LABEL: what kind of file it
    is, so that a signature made for one kind never verifies another."""
    return hmac.new(secret, label.encode("utf-8", "surrogateescape") + b"\0" + data, hashlib.sha256).hexdigest()
