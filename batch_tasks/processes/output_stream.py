"""An agent's output: kept in its log as it arrives, and cut into lines for its reader.

What arrives goes to the log at once, masked (see redaction), whether or not it
ends a line: a `\\r` progress bar shows in `tail -f output.log` as it is drawn.
Lines are made only for the reader, from the same masked bytes, and no line
handed to it is longer than MAX_LINE: the rest of a longer one is kept in the
log but not given to the reader. Every byte is looked at a bounded number of
times, so a line of a hundred megabytes costs what its bytes cost.
It may touch: the log file object and the pipe it is given.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Callable

from ..redaction import Redactor

CHUNK = 65536
MAX_LINE = 4 * 1024 * 1024  # what the reader is given of one line, at most
CUT_MARK = b" [line cut: batch-tasks keeps the rest in output.log]"


class OutputStream:
    def __init__(self, fd: int, log: BinaryIO, on_line: Callable[[str], None], redactor: Redactor):
        self.fd = fd
        self.log = log
        self.on_line = on_line
        self.redactor = redactor
        self.masker = redactor.stream()
        self.line = bytearray()
        self.cut = False
        self.closed = False
        os.set_blocking(fd, False)

    def read_available(self, chunks: int = 16) -> bool:
        """Take what the pipe has now, up to `chunks` reads (so that a flood of output
        does not keep the caller from watching the process); True if anything came."""
        came = False
        for _ in range(chunks):
            if self.closed:
                break
            try:
                chunk = os.read(self.fd, CHUNK)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                break
            came = True
            self._take(self.masker.feed(chunk))
        return came

    def finish(self) -> None:
        """The output ends: keep what was held back, and give the reader the last line."""
        self._take(self.masker.flush())
        if self.line or self.cut:
            self._emit()

    def _take(self, data: bytes) -> None:
        if not data:
            return
        self.log.write(data)
        self.log.flush()
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            self._append(data, start, end)
            self._emit()
            start = end + 1
        self._append(data, start, len(data))

    def _append(self, data: bytes, start: int, end: int) -> None:
        room = MAX_LINE - len(self.line)
        if end - start > room:
            end, self.cut = start + max(room, 0), True
        self.line += data[start:end]

    def _emit(self) -> None:
        line = self.redactor.json_line(bytes(self.line)) + (CUT_MARK if self.cut else b"")
        self.line.clear()
        self.cut = False
        self.on_line(line.decode("utf-8", "replace").rstrip("\r"))
