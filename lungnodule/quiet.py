"""Keep TensorFlow's C++ log lines off the console unless asked for (`--verbose`).

TensorFlow 2.21 writes lines such as ``I0000 ... cudart_stub.cc:31] Could not find cuda drivers`` and
``E0000 ... cuda_platform.cc:52] failed call to cuInit: ... (303)`` straight to file descriptor 2 from C++,
before and after absl's logging starts, so neither ``TF_CPP_MIN_LOG_LEVEL`` nor absl's flags hold them back;
to a user they read like failures. :func:`silence_native_logs` puts a filter on descriptor 2: a thread copies
everything written there to the real stderr except complete lines in that format (and absl's
``WARNING: All log messages before absl::InitializeLog() ...`` notice). Progress bars and error messages pass
unchanged; the filter is removed, and what is still in it written out, when the program exits.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# "I0000 00:00:1796169222.184155   13864 port.cc:153] ..." (level, date, time, thread, file:line]).
_NATIVE_LINE = re.compile(rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]+:\d+\] .*|"
                          rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR|"
                          rb"To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler "
                          rb"flags\.)\r?\n?$")
_MAYBE = re.compile(rb"^(?:[IWEF]\d{4} |[IWEF]\d{0,4}$|WARNING: All|To enable the)")  # such a line, unfinished
_installed = False


def _pump(read_fd: int, write_fd: int) -> None:
    pending = b""
    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        pending += chunk
        lines = pending.splitlines(keepends=True)
        pending = b""
        if lines and not lines[-1].endswith((b"\n", b"\r")):
            last = lines.pop()
            if _MAYBE.match(last):
                pending = last  # wait for the rest of the line before deciding
            else:
                lines.append(last)
        out = b"".join(ln for ln in lines if not _NATIVE_LINE.match(ln))
        if out:
            os.write(write_fd, out)
    if pending and not _NATIVE_LINE.match(pending):
        os.write(write_fd, pending)


def silence_native_logs(verbose: bool = False) -> None:
    """Filter TensorFlow's C++ log lines out of this process's stderr (see the module docstring); a no-op
    with `verbose`, when called twice, or when stderr cannot be redirected."""
    global _installed
    if verbose or _installed or os.environ.get("LUNGNODULE_VERBOSE"):
        return
    try:
        sys.stderr.flush()
        original = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
    except OSError:
        return
    thread = threading.Thread(target=_pump, args=(read_fd, original), daemon=True, name="stderr-filter")
    thread.start()
    _installed = True

    def restore() -> None:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(original, 2)  # closes the pipe's last write end: the thread drains it and stops
        thread.join(timeout=5)

    atexit.register(restore)
