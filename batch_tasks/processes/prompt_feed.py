"""Giving an agent its prompt on stdin without the runner waiting on it: the pipe is written
at once when it holds the whole prompt, else from a thread; then it is closed. An agent that
exits without reading is no error. Touches only the pipe it is given."""

from __future__ import annotations

import os
import threading


def feed(pipe, data: bytes) -> None:
    """Give the agent its prompt on stdin, then close it: at once when the pipe holds it all
    (a prompt mostly fits), else from a thread, so that an agent slow to read it is no wait."""
    fd = pipe.fileno()
    os.set_blocking(fd, False)
    try:
        written = os.write(fd, data) if data else 0
    except BlockingIOError:
        written = 0
    except OSError:  # it exited without reading: that is fine
        written = len(data)
    if written == len(data):
        _close(pipe)
        return
    os.set_blocking(fd, True)
    threading.Thread(target=_feed_rest, args=(pipe, data[written:]), daemon=True).start()


def _feed_rest(pipe, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:  # an unbuffered pipe may take part of it at a time
            view = view[os.write(pipe.fileno(), view):]
    except OSError:
        pass
    finally:
        _close(pipe)


def _close(pipe) -> None:
    try:
        pipe.close()
    except OSError:
        pass
