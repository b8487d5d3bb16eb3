"""A `livegate serve` child process, for the e2e suite and benches/python_client.py
(the Python twin of the Rust `livegate::process::GatewayProcess`).

The gateway's first stdout line is `livegate listening on http://127.0.0.1:PORT`.
A thread reads stdout to its end, keeping every line: the pipe never fills and
the gateway's later writes never meet a closed pipe. The process is stopped by
its own pid: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import threading
from typing import IO, Mapping, Optional, Sequence

LISTEN_RE = re.compile(r"^livegate listening on (http://127\.0\.0\.1:(\d+))$")


def die_with_parent() -> None:  # runs in the child between fork and exec
    """Asks Linux to SIGKILL the child if this process dies first."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def stop_pid(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 5.0) -> int:
    """Stops one process by its pid; returns its exit code (negative = killed by signal)."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
    return proc.returncode


class GatewayProcess:
    """Starts `argv` (a `livegate serve ... --listen 127.0.0.1:0` command line)
    and waits for its first line. Raises RuntimeError (the process stopped)
    when there is none within `timeout` seconds or it is not the listening line."""

    def __init__(self, argv: Sequence[str], *, stderr: IO[bytes], env: Mapping[str, str],
                 timeout: float = 15.0) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=stderr, env=dict(env), preexec_fn=die_with_parent)
        self.stdout_lines: list[str] = []
        got_first = threading.Event()
        self.pump = threading.Thread(target=self._pump, args=(got_first,), daemon=True,
                                     name=f"stdout-{self.proc.pid}")
        self.pump.start()
        got_first.wait(timeout)
        first = self.stdout_lines[0] if self.stdout_lines else None
        m = LISTEN_RE.match(first) if first is not None else None
        if m is None:
            code = self.proc.poll()
            self.stop()
            why = (f"printed no first line within {timeout}s (exit={code})" if first is None
                   else f"printed {first!r} first")
            raise RuntimeError(f"the gateway {why}; argv={self.argv}")
        self.url: str = m.group(1)
        self.port: int = int(m.group(2))

    def _pump(self, got_first: threading.Event) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.stdout_lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
            got_first.set()
        got_first.set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, grace: float = 5.0) -> int:
        """Stops it by pid; once its stdout is read to the end, closes the pipe."""
        code = stop_pid(self.proc, sig, grace)
        self.pump.join(5)
        if self.proc.stdout is not None and not self.pump.is_alive():
            self.proc.stdout.close()
        return code

    def running(self) -> bool:
        return self.proc.poll() is None

    def first_line(self) -> Optional[str]:
        return self.stdout_lines[0] if self.stdout_lines else None
