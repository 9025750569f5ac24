"""The batch's state folder: one folder per item, records written atomically, one run at a time.

Nothing in the state folder is trusted, since it may be shared or committed: no symbolic
link in it is ever followed. Files are opened with O_NOFOLLOW, folders are checked
one by one as they are made, and a link where a file or folder of ours should be is
refused in one line (`LinkRefused`), naming it. Records that are not regular files
are read as absent.

    .batch/<task file stem>/      the stem of the real file: `plan.md -> task.md` is task's
        run.lock                  the run in progress says its pid here (see run_lock)
        doit.sqlite               doit's own dependency records
        items/<group>/<module>/
            prompt.md             the prompt of the latest attempt
            output.log            everything the agent printed, appended live
            events.jsonl          what it did, one normalized event a line, appended live
            running.json          the latest attempt's start: beside no result, an attempt in
                                  progress (or one a killed run left)
            exit.json             how the agent of an attempt its run could not record ended,
                                  written by the run's watchdog (see watchdog.py)
            result.json           the success record: the item's doit target; set aside as
                                  result.previous.json when an attempt starts
            failure.json          why the last attempt failed or was interrupted
            services.json         the item's `services:` are up (or starting): the BATCH_PORT,
                                  BATCH_SLOT, ports and BATCH_WORKTREE they were started with,
                                  no secret; removed once `services_down:` has run. Left by a
                                  killed run, it tells the next run's recovery what to stop
            forgotten.json        `doit forget` was used; the result it had is in result.forgotten.json
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import stat
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import BatchError

RESULT = "result.json"
FAILURE = "failure.json"
RUNNING = "running.json"
EXIT = "exit.json"
FORGOTTEN = "forgotten.json"
SERVICES = "services.json"


class LinkRefused(OSError):
    """A symbolic link where the state folder should have a file or folder of its own."""

    def __init__(self, path: str):
        super().__init__(errno.ELOOP, f"{path} is a symbolic link: batch-tasks never follows links in its state folder; remove it")


def open_fd(path: str, flags: int, mode: int = 0o644) -> int:
    """os.open that never follows a link at `path`."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise LinkRefused(str(path)) from None
        raise


def open_append(path: str) -> "AppendLog":
    """A log of the state folder, for appending."""
    return AppendLog(open_fd(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT))


class AppendLog:
    """An open log, each write appended whole at once (O_APPEND): bytes, or text as UTF-8. A
    file object would cost four system calls more to open (a stat, two seeks, a terminal's
    test), and every item opens its two logs."""

    def __init__(self, fd: int):
        self._fd = fd

    def write(self, data: bytes | str) -> None:
        _write_all(self._fd, data.encode("utf-8") if isinstance(data, str) else data)

    def flush(self) -> None:
        pass  # nothing is held back

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> "AppendLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_text(path: str, text: str) -> None:
    fd = open_fd(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        _write_all(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """os.write until all is written: a file object would cost four more system calls a file."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class NotRegularFile(OSError):
    """A FIFO, device or folder where the state folder should have a file: reading it could
    wait for ever, or never end."""

    def __init__(self, path: str):
        super().__init__(errno.EINVAL, "it is not a regular file", path)


def open_to_read(path: str) -> BinaryIO:
    """A file of the state folder, for reading: never through a link (LinkRefused), never a
    FIFO or a device (NotRegularFile; O_NONBLOCK, so that even opening one does not wait)."""
    fd = open_fd(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile(path)
    return os.fdopen(fd, "rb")


def read_bytes(path: str) -> bytes | None:
    """A file of the state folder, or None if it is missing, a link or not a regular file."""
    try:
        with open_to_read(path) as stream:
            return stream.read()
    except OSError:
        return None


def ensure_folder(base: str, relative: str) -> bool:
    """Make `base/relative`, folder by folder, refusing any link on the way; True if this
    call made its last folder (so it is empty)."""
    path, made = base, False
    for part in [p for p in relative.split("/") if p]:
        path, made = f"{path}/{part}", False
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            try:
                os.mkdir(path)
                made = True
            except FileExistsError:
                pass
            info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            raise LinkRefused(path)
        if not stat.S_ISDIR(info.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, f"{path} is not a folder")
    return made


@lru_cache(maxsize=None)
def safe_name(name: str) -> str:
    """A folder name for any module or group name, never leaving its parent folder.

    Names that are not already plain get a short hash, so that distinct names
    never share a folder (`src/auth` and `src-auth` differ).
    """
    plain = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:80] or "item"
    if plain == name:
        return plain
    return f"{plain}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def write_json_atomic(path: Path | str, data: Any, durable: bool = False) -> None:
    """Write a record whole or not at all; `durable` also survives a crash of the machine
    (fsync), for records that stand for money spent. One line: json's C encoder serves only
    unindented output, several times faster than its Python one, and every item writes records."""
    write_atomic(path, json.dumps(data, sort_keys=True) + "\n", durable)


def write_atomic(path: Path | str, text: str, durable: bool = False) -> None:
    """Write a file whole or not at all (temp file, rename): a reader never sees half of it."""
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        # A new file (never one planted there); the rename replaces a link at `path`, never its target.
        fd = open_fd(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(fd, text.encode("utf-8"))
            os.replace(temporary, path)  # visible to the next run at once...
            if durable:
                os.fsync(fd)  # ...and then safe from a crash of the machine
        finally:
            os.close(fd)
    except BaseException:
        try:
            os.remove(temporary)
        except FileNotFoundError:
            pass
        raise


def rewrite_in_place(path: str, old: bytes, new: bytes) -> bool:
    """Turn a record's leading bytes OLD into NEW (as long) where they are, in one write;
    False, with nothing written, unless it is a regular file that starts with OLD."""
    try:
        fd = open_fd(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode) or os.pread(fd, len(old), 0) != old:
            return False
        return os.pwrite(fd, new, 0) == len(new)
    finally:
        os.close(fd)


def read_json(path: Path | str) -> dict[str, Any] | None:
    """A record, or None: unreadable records (or links, or no files) count as absent, and
    the item simply runs again."""
    raw = read_bytes(str(path))
    try:
        data = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class ItemState:
    """The state folder of one item. Its paths are strings: a big batch makes tens of
    thousands of them on every load, and pathlib would take a third of that time."""

    def __init__(self, folder: str, state_root: str = ""):
        self.folder = folder
        self._root = state_root
        self.prompt = f"{folder}/prompt.md"
        self.log = f"{folder}/output.log"
        self.events = f"{folder}/events.jsonl"
        self.result = f"{folder}/{RESULT}"
        self.failure = f"{folder}/{FAILURE}"
        self.running = f"{folder}/{RUNNING}"
        self.exit = f"{folder}/{EXIT}"
        self.forgotten = f"{folder}/{FORGOTTEN}"
        self.services = f"{folder}/{SERVICES}"

    def ensure(self) -> bool:
        """Make the item's folder, refusing links on the way (from the state folder down);
        True if it was not there (then it holds nothing yet)."""
        root = self._root or os.path.dirname(os.path.dirname(os.path.dirname(self.folder)))
        return ensure_folder(root, os.path.relpath(self.folder, root))

    def open_log(self):
        return open_append(self.log)

    def open_events(self) -> AppendLog:
        return open_append(self.events)

    def write_prompt(self, text: str) -> None:
        write_text(self.prompt, text)

    def files(self) -> frozenset[str]:
        try:
            return frozenset(os.listdir(self.folder))
        except (FileNotFoundError, NotADirectoryError):
            return frozenset()

    def forget(self) -> None:
        """Set the result aside, so the item runs again and says why."""
        if self._set_aside("result.forgotten.json"):
            write_json_atomic(self.forgotten, {"forgotten_at": time.time()})

    def set_result_aside(self) -> None:
        """An attempt starts: its result, if any, is no longer the latest word."""
        self._set_aside("result.previous.json")

    def _set_aside(self, name: str) -> bool:
        """Move the result to NAME, if there is one; first the start record of the attempt that
        made it, which beside no result would stand for an attempt killed mid-run."""
        if not os.path.lexists(self.result):
            return False
        self.remove(self.running)
        os.replace(self.result, f"{self.folder}/{name}")
        return True

    def remove_temporary_files(self) -> None:
        """What write_json_atomic left behind when its run was killed mid-write."""
        self.remove(*(f"{self.folder}/{name}" for name in self.files() if name.startswith(".") and name.endswith(".tmp")))

    def remove(self, *paths: str) -> None:
        for path in paths:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


class BatchState:
    """The state folder of one task file."""

    def __init__(self, taskfile: Path):
        self.taskfile = taskfile
        # The real file: an alias (`plan.md -> task.md`) shares its state and its lock.
        self.real_taskfile = Path(os.path.realpath(taskfile))
        self.root = self.real_taskfile.parent / ".batch" / safe_name(self.real_taskfile.stem)
        self._items = str(self.root / "items")
        self.db = self.root / "doit.sqlite"
        self.lock_file = self.root / "run.lock"
        self.tick_lock = self.root / "tick.lock"

    def item(self, group: str, module: str) -> ItemState:
        return ItemState(f"{self._items}/{safe_name(group)}/{safe_name(module)}", str(self.root))

    def ensure(self) -> None:
        try:
            ensure_folder(str(self.real_taskfile.parent), os.path.relpath(self.root, self.real_taskfile.parent))
            for name in ("doit.sqlite",):  # doit opens its database itself: no link there
                if os.path.islink(self.root / name):
                    raise LinkRefused(str(self.root / name))
        except OSError as error:
            raise BatchError(f"cannot create the state folder {self.root}: {error.strerror}") from None

    @contextlib.contextmanager
    def run_lock(self, by: str = "run", **facts):
        """Held for a whole run, by the kernel: freed when the holder dies, so never stale.
        Commands that write the batch's records (`by`: clean, forget, ignore) hold it too, and
        leave run.lock as they found it: a killed run's name stays there for the next run.

        What is locked is the task file itself, by its real path (an abstract socket named
        for it, which no `rm` can take away and an editor's new copy of the file keeps) and
        by its inode (a flock on it, which a hard link or another network namespace shares).
        Yields whether the run before was killed: a run that ends clears run.lock, so a
        holder still named in it died without ending. `facts` (e.g. workers) are written into
        it for `batch-status` to read."""
        self.ensure()
        with contextlib.ExitStack() as holds:
            try:
                holds.enter_context(_hold_name(self.real_taskfile))
                if (inode := _hold_inode(self.real_taskfile)) is not None:
                    holds.enter_context(inode)
            except BlockingIOError:
                holder = lock_holder(self)
                raise BatchError(
                    f"{'another run' if by == 'run' else 'a run'} ({holder['text'] if holder else 'pid unknown'}) "
                    f"is running {self.taskfile.name}; wait for it to end, or stop it, then {by} again"
                ) from None
            if by != "run":
                yield False
                return
            try:
                stream = os.fdopen(open_fd(str(self.lock_file), os.O_RDWR | os.O_CREAT), "r+", encoding="utf-8")
            except OSError as error:
                raise BatchError(f"cannot write {self.lock_file}: {error.strerror}") from None
            with stream:
                killed_before = bool(stream.read().strip())
                stream.seek(0)
                stream.truncate()
                import psutil  # here: commands that only read the plan need none of process control

                me = psutil.Process()
                stream.write(json.dumps({"pid": me.pid, "create_time": me.create_time(), "started": time.time(), **facts}))
                stream.flush()
                try:
                    yield killed_before
                finally:
                    stream.seek(0)
                    stream.truncate()


def _hold_name(taskfile: Path) -> socket.socket:
    """An abstract Unix socket named for the file's real path: one holder at a time."""
    name = hashlib.sha256(os.fsencode(taskfile)).hexdigest()[:40]
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        holder.bind(f"\0batch-tasks/{name}")
    except OSError as error:
        holder.close()
        if error.errno == errno.EADDRINUSE:
            raise BlockingIOError() from None
        raise
    return holder


def _hold_inode(taskfile: Path):
    """A flock on the file itself; a file that is not there is no batch, as loading it says."""
    try:
        stream = open(taskfile, "rb")
    except OSError:
        return None
    try:
        fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        stream.close()
        raise
    return stream


def lock_holder(state: BatchState) -> dict[str, Any] | None:
    """The run that holds the batch now, or None. Read without locking, so that
    looking never gets in a run's way: a holder that died is no holder."""
    from .process_identity import is_same_process  # as in run_lock

    holder = read_json(state.lock_file)
    try:
        if not is_same_process(holder["pid"], holder["create_time"]):
            return None
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"]))
    except (TypeError, KeyError, ValueError):
        return None
    return {**holder, "text": f"pid {holder['pid']}, started {started}"}


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive lock between threads and processes of this batch (on a bare descriptor:
    a file object costs four more system calls, and every tick takes this lock)."""
    fd = open_fd(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
