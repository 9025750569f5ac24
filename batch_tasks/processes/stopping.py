"""How a run is told to stop: Ctrl-C, SIGTERM, SIGHUP (its terminal closed), or its
standard output closed under it (`doit run-batch | head`, a `tee` that died).

Each stops the agents through the run's Supervisor, so their items are recorded as
interrupted and the next run resumes them; none kills the runner mid-record. Touches
the process's signal handlers and standard output, nothing else.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # every command imports this module for its exit statuses: psutil only where agents run
    from . import process

CLOSED_OUTPUT = "its output closing"
EXIT_CTRL_C, EXIT_CLOSED_OUTPUT = 128 + signal.SIGINT, 128 + signal.SIGPIPE
_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
_STATUS = {"Ctrl-C": EXIT_CTRL_C, "SIGTERM": 128 + signal.SIGTERM, "SIGHUP": 128 + signal.SIGHUP,
           CLOSED_OUTPUT: EXIT_CLOSED_OUTPUT}


class Stop:
    """What told the run to stop, first cause first; and the stopping of its agents."""

    def __init__(self, supervisor: process.Supervisor):
        self.supervisor = supervisor
        self.causes: list[str] = []

    def __call__(self, cause: str) -> None:
        # Ctrl-C once is gentle (SIGTERM, a grace, then SIGKILL); anything else, or twice, at once.
        at_once = cause != "Ctrl-C" or bool(self.causes)
        self.causes.append(cause)
        kwargs = {"grace": 0.0} if at_once else {}  # the supervisor's own grace, when gentle
        threading.Thread(target=self.supervisor.stop_all, kwargs=kwargs, daemon=True).start()

    @property
    def exit_status(self) -> int | None:
        return _STATUS[self.causes[0]] if self.causes else None

    @contextmanager
    def on_signals(self):
        previous = {signum: signal.signal(signum, lambda signum, frame: self(_NAMES[signum])) for signum in _NAMES}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


class GuardedOutput:
    """A stream whose reader may go: the first write that fails stops the run, and what
    follows is dropped instead of raising in the middle of recording an item."""

    def __init__(self, stream, stop: Stop):
        self.stream, self.stop, self.closed = stream, stop, False

    def write(self, text: str) -> int:
        if not self.closed:
            try:
                self.stream.write(text)
            except (BrokenPipeError, ConnectionResetError, ValueError):  # ValueError: the stream was closed
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.closed:
            try:
                self.stream.flush()
            except (BrokenPipeError, ConnectionResetError, ValueError):
                self._gone()

    def isatty(self) -> bool:
        return not self.closed and self.stream.isatty()

    def __getattr__(self, name):  # fileno, encoding, ...: what rich and doit ask of a stream
        return getattr(self.stream, name)

    def _gone(self) -> None:
        self.closed = True
        drop_output(self.stream)
        self.stop(CLOSED_OUTPUT)


def drop_output(stream) -> None:
    """Send what is still to be written to `stream`, whose reader went, nowhere: so that
    the interpreter's last flush at exit finds somewhere to write."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
