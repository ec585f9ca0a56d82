"""Run the reference target as a child process: for tests, benchmarks and ``nucleus-bench run``.

Pure stdlib, no asyncio: Locust (gevent) code can use it as well as asyncio code and plain tests.

Example::

    with EmbeddedTarget(store="memory", extra_args=["--drop-ack-ratio", "0.1"]) as target:
        print(target.url)     # http://127.0.0.1:41234

The child reads its URL line from standard output (api.md). Its standard input is a pipe that the parent
keeps open: if the parent dies without stopping it, the child sees end of file and shuts down gracefully.
Its standard error goes to a temporary file, quoted when the child fails to start (``stderr_text()``).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import bench
from bench.protocol.errors import TargetStartError, UsageError

_ROOT = str(Path(bench.__file__).resolve().parent.parent)


class EmbeddedTarget:
    """A context manager that runs ``python -m bench.target`` as a child process.

    Args:
        store: ``"memory"`` or the path of a SQLite file.
        host: address to listen on.
        port: TCP port; 0 (the default) picks a free one.
        extra_args: more flags of ``nucleus-bench target`` (limits, faults).
        startup_timeout_s: how long to wait for the URL line.
    """

    url: str
    pid: int

    def __init__(self, *, store: str = "memory", host: str = "127.0.0.1", port: int = 0,
                 extra_args: Sequence[str] = (), startup_timeout_s: float = 15.0) -> None:
        self.store = store
        self.host = host
        self.port = port
        self.extra_args = tuple(extra_args)
        self.startup_timeout_s = startup_timeout_s
        self.url = ""
        self.pid = 0
        self.returncode: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def argv(self) -> list[str]:
        """The command line of the child."""
        return [sys.executable, "-m", "bench.target", "--host", self.host, "--port", str(self.port),
                "--store", self.store, "--stop-on-stdin-eof", *self.extra_args]

    def start(self) -> EmbeddedTarget:
        """Spawn the target and wait for its URL line.

        Raises:
            TargetStartError: it exited first (its error output is in the message) or did not answer in time.
        """
        if self._proc is not None:
            raise RuntimeError("this EmbeddedTarget is already started")
        env = dict(os.environ)
        # The child imports this very package, installed or not.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH", "")) if p)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  # lives as long as the child; closed in __exit__
        self._proc = proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=self._stderr, env=env, start_new_session=True)
        self.pid = proc.pid
        try:
            self.url = self._read_url(proc)
        except BaseException:
            self._kill()
            raise
        return self

    def _read_url(self, proc: subprocess.Popen[bytes]) -> str:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + self.startup_timeout_s
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TargetStartError(f"the target printed no URL within {self.startup_timeout_s:g} s"
                                           f"{self._stderr_tail()}")
                if not sel.select(left):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    code = proc.wait()
                    raise TargetStartError(f"the target exited with code {code} before it printed its URL"
                                           f"{self._stderr_tail()}")
                buf += chunk
        return buf.split(b"\n", 1)[0].decode().strip()

    def stderr_text(self) -> str:
        """Everything the child wrote to standard error so far."""
        if self._stderr is None:
            return ""
        fd = self._stderr.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def _stderr_tail(self) -> str:
        text = self.stderr_text().strip()
        return f": {text.splitlines()[-1]}" if text else ""

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the child (tests use SIGINT and SIGTERM)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        """Wait for the child to exit; its exit code. Raises ``subprocess.TimeoutExpired``."""
        assert self._proc is not None, "not started"
        self.returncode = self._proc.wait(timeout_s)
        self._close_pipes()
        return self.returncode

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, wait up to ``timeout_s`` (then SIGKILL); the exit code (0 after a clean shutdown).

        The default outlasts the target's own shutdown bound (``--shutdown-timeout-s``, 10 s: peers that
        read nothing are cut then) and its last flush, so a stuck peer never gets the store killed.
        """
        proc = self._proc
        if proc is None:
            return self.returncode if self.returncode is not None else 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._kill()
        self.returncode = proc.wait()
        self._close_pipes()
        self._proc = None
        return self.returncode

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        proc = self._proc
        if proc is not None:
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None and not pipe.closed:
                    pipe.close()

    def __enter__(self) -> EmbeddedTarget:
        return self.start() if self._proc is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


@contextlib.contextmanager
def given_or_embedded(target_url: str | None, store: str | None, extra_args: Sequence[str],
                      announce: Callable[[str, str], str]) -> Iterator[tuple[str, bool]]:
    """Yield (base URL, embedded?): ``target_url`` as given, or an embedded reference target started for the
    block (SQLite in a temporary folder unless ``store`` says otherwise) and stopped after it.

    ``announce(url, kind)`` is the line said on stderr once it runs (``kind``: "in memory" or its file).

    Raises:
        UsageError: the embedded target did not start (e.g. a bad extra flag: the child's own last line).
    """
    if target_url is not None:
        yield target_url, False
        return
    with tempfile.TemporaryDirectory(prefix="nucleus-bench-target-") as tmp:
        path = store or str(Path(tmp) / "target.sqlite3")
        embedded = EmbeddedTarget(store=path, extra_args=extra_args)
        try:
            embedded.start()
        except (TargetStartError, OSError) as exc:
            raise UsageError(f"the embedded target did not start: {exc}") from None
        print(announce(embedded.url, "in memory" if path == "memory" else f"SQLite store {path}"),
              file=sys.stderr)
        try:
            yield embedded.url, True
        finally:
            embedded.stop()
