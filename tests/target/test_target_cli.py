"""``nucleus-bench target`` / ``python -m bench.target``: flags, defaults, one-line errors."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from timeouts import TIMEOUT_S

from bench.protocol.errors import TargetStartError
from bench.protocol.message import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS
from bench.target import cli, config, ingest, limits
from bench.target.embedded import EmbeddedTarget

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.target", *args], capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False, cwd=ROOT, stdin=subprocess.DEVNULL)


def test_help_names_the_default_store_file() -> None:
    """``--help`` says which SQLite file is used when ``--store`` is not given."""
    proc = _run("--help")
    assert proc.returncode == 0
    assert config.DEFAULT_STORE in proc.stdout and "--drop-ack-ratio" in proc.stdout


def test_cli_defaults_are_the_library_defaults() -> None:
    """The flag defaults (kept light for --help) agree with the defaults of the code they configure."""
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args([])
    built = cli.config_from_args(args)
    assert built == config.TargetConfig(stop_on_stdin_eof=False)
    assert (cli.DEFAULT_STORE, cli.DEFAULT_PORT) == (config.DEFAULT_STORE, config.DEFAULT_PORT)
    assert (cli.DEFAULT_HTTP_RATE, cli.DEFAULT_HTTP_BURST, cli.DEFAULT_IDLE_TIMEOUT_S) == (
        limits.DEFAULT_HTTP_RATE, limits.DEFAULT_HTTP_BURST, limits.DEFAULT_IDLE_TIMEOUT_S)
    assert (cli.DEFAULT_DEDUP_WINDOW_S, cli.DEFAULT_SESSION_TIMEOUT_S) == (
        ingest.DEFAULT_DEDUP_WINDOW_S, ingest.DEFAULT_SESSION_TIMEOUT_S)
    caps = ("DEFAULT_MAX_APPS", "DEFAULT_MAX_SESSIONS", "DEFAULT_DEDUP_MAX_KEYS", "DEFAULT_MAX_DEVICES")
    assert [getattr(cli, name) for name in caps] == [getattr(ingest, name) for name in caps]
    assert (built.limits.max_bytes, built.limits.max_events) == (DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS)


@pytest.mark.parametrize(("flags", "says"), [
    (["--drop-ack-ratio", "1.5"], "--drop-ack-ratio"),
    (["--ack-delay-ms", "soon"], "--ack-delay-ms"),
    (["--ack-delay-ms", "uniform:5"], "uniform"),
    (["--stall-ms", "10"], "--stall-every-ms"),
    (["--stall-ms", "10", "--stall-every-ms", "5"], "--stall-ms"),
    (["--max-events", "0"], "--max-events"),
    (["--http-rate", "-1"], "--http-rate"),
    (["--port", "70000"], "--port"),
    (["--max-apps", "0"], "--max-apps"),
    (["--max-sessions", "1"], "--max-sessions"),
    (["--dedup-max-keys", "1"], "--dedup-max-keys"),
    (["--max-devices", "0"], "--max-devices"),
    (["--port", "many"], "--port"),
    (["--store", "/no/such/dir/x.sqlite3"], "/no/such/dir"),
])
def test_bad_flags_give_one_line_and_exit_2(flags: list[str], says: str) -> None:
    """A bad value is named in one line on standard error, exit status 2, no traceback."""
    proc = _run("--port", "0", "--store", "memory", *flags)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 or lines[0].startswith("usage:"), proc.stderr
    assert says in lines[-1] and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_a_store_that_is_not_sqlite_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A --store file that is not a SQLite database is refused by name."""
    bad = tmp_path / "notes.txt"
    bad.write_bytes(b"not a database, just text\n" * 100)
    proc = _run("--port", "0", "--store", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"nucleus-bench target: error: --store {bad}: cannot open")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_busy_port_is_one_line_and_exit_2() -> None:
    """Listening on a port already taken fails cleanly."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        proc = _run("--port", str(sock.getsockname()[1]), "--store", "memory")
    assert proc.returncode == 2
    assert proc.stderr.startswith("nucleus-bench target: error: cannot listen on 127.0.0.1:")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_embedded_target_reports_a_failed_start() -> None:
    """EmbeddedTarget.start raises with the target's own error line when the target cannot start."""
    with pytest.raises(TargetStartError, match=r"exited with code 2.*--close-ratio"):
        EmbeddedTarget(extra_args=["--close-ratio", "7"]).start()


def test_embedded_target_prints_url_and_stops_with_0() -> None:
    """The first line is the base URL of a free loopback port; stop() sends SIGTERM and returns 0."""
    with EmbeddedTarget() as t:
        assert t.url.startswith("http://127.0.0.1:") and int(t.url.rsplit(":", 1)[1]) > 0
        assert t.pid > 0
        assert t.stop() == 0
    assert t.stop() == 0  # idempotent


def test_the_default_store_is_a_file_in_the_working_directory(tmp_path: Path) -> None:
    """Without ``--store`` the target writes nucleus-target.sqlite3 where it runs."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.target", "--port", "0"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("http://127.0.0.1:")
        assert (tmp_path / config.DEFAULT_STORE).exists()
    finally:
        proc.terminate()
        assert proc.wait(TIMEOUT_S) == 0


def test_the_cli_and_embedded_modules_load_no_server_library() -> None:
    """bench/cli.py imports bench.target.cli for --help, Locust imports EmbeddedTarget: both stay light."""
    probe = ("import sys, bench.target.cli, bench.target.embedded; print(sorted(m for m in sys.modules "
             "if m.split('.')[0] in ('aiohttp', 'uvloop', 'websockets')))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=TIMEOUT_S,
                          check=True, cwd=ROOT)
    assert proc.stdout.strip() == "[]"
