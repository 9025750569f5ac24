"""The floor under a Python runner of `true` items, for bench/throughput.py (`--tool floor records doit-records`).

    python bench/python_floor.py COUNT JOBS [--records]

COUNT items on JOBS threads, each starting `true` as batch-tasks starts an agent (subprocess.Popen,
which vforks: its stdin and stdout piped, a session of its own) and waiting for its exit and the end of
its output. With --records, each item also keeps what batch-tasks keeps to be safe from a crash: its
own folder, its prompt, output log and events (appended), its start record and its result each
written whole (a temporary file renamed), the result fsynced before its checkbox in task.md is ticked
in place under a lock. No cgroup, no watchdog, no doit, no views: what is left between this and
batch-tasks is the runner's own work, and what is left between this and make is Python's and the records'.

bench/throughput.py's `doit-records` runs the same `run_one` as bare doit's Python action, one task an
item with its result as target, on doit's thread runner: the floor of a runner built on doit that keeps
these records, as batch-tasks is.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import subprocess
import sys
import threading


def write_whole(path: str, data: bytes, durable: bool = False) -> None:
    temporary = f"{path}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.replace(temporary, path)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def append(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def run_one(number: int, records: bool, marks: dict[int, int]) -> None:
    folder = f"items/m{number}"
    if records:
        os.mkdir(folder)
        with open(f"{folder}/prompt.md", "wb") as prompt:
            prompt.write(b"the item's prompt\n")
        append(f"{folder}/output.log", b"=== m attempt 1 ===\n")
        write_whole(f"{folder}/running.json", json.dumps({"item": number, "attempt": 1}).encode())
    child = subprocess.Popen(["/usr/bin/true"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
    child.stdin.close()
    output = child.stdout.read()
    child.stdout.close()
    status = child.wait()
    if records:
        append(f"{folder}/events.jsonl", json.dumps({"kind": "exit", "status": status}).encode() + b"\n")
        append(f"{folder}/output.log", output)
        write_whole(f"{folder}/result.json", json.dumps({"item": number, "ok": status == 0}).encode(), durable=True)
        lock = os.open("tick.lock", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            task = os.open("task.md", os.O_RDWR)
            try:
                if os.pread(task, 1, marks[number]) == b" ":
                    os.pwrite(task, b"x", marks[number])
            finally:
                os.close(task)
        finally:
            os.close(lock)


def task_file(count: int) -> dict[int, int]:
    """Write task.md's COUNT unticked items and their folders' parent; each item's checkbox offset."""
    os.makedirs("items", exist_ok=True)
    lines = [f"- [ ] m{number}: item {number}\n" for number in range(count)]
    marks, offset = {}, 0
    for number, line in enumerate(lines):
        marks[number] = offset + 3
        offset += len(line.encode())
    with open("task.md", "w", encoding="utf-8") as task:
        task.writelines(lines)
    return marks


def main() -> None:
    count, jobs, records = int(sys.argv[1]), int(sys.argv[2]), "--records" in sys.argv[3:]
    marks = task_file(count) if records else {}
    work: queue.SimpleQueue = queue.SimpleQueue()
    for number in range(count):
        work.put(number)
    failed: list[BaseException] = []

    def serve() -> None:
        while True:
            try:
                number = work.get_nowait()
            except queue.Empty:
                return
            try:
                run_one(number, records, marks)
            except BaseException as error:  # noqa: BLE001 - reported once all threads end
                failed.append(error)
                return

    threads = [threading.Thread(target=serve) for _ in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        raise SystemExit(f"{len(failed)} items failed: {failed[0]!r}")


if __name__ == "__main__":
    main()
