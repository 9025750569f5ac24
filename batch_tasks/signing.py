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
from pathlib import Path

from . import __version__


@lru_cache(maxsize=1)
def code_digest() -> bytes:
    """Every .py file of the package, by path and content, and its version."""
    package = Path(__file__).parent
    digest = hashlib.sha256(__version__.encode())
    for source in sorted(package.rglob("*.py")):
        digest.update(b"\0" + str(source.relative_to(package)).encode() + b"\0" + source.read_bytes())
    return digest.digest()


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
