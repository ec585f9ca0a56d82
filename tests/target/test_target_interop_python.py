"""Interop: the official Python module, nucleus-python 0.3.0 from PyPI, against the reference target.

The module runs as it ships, in its own virtual environment (built once per test session), from a small
script that points it at the target on loopback (``nucleus.api_url``), starts a session, tracks events and
an error, and waits until the target has acknowledged all of them (the module empties its queue on each
``reportedIds``). The test then reads the target's stats and stored ids: everything the module sent is
acknowledged and stored, nothing refused. The module draws event ids at random (1..10,000); the script
seeds that draw so that two of its events share an id, which the target must store as two events
(contract.md, "Acknowledgements").

Skipped, with the reason, only when pip cannot reach the package registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from target_helpers import TargetFactory, stats, stored_ids
from timeouts import PROCESS_TIMEOUT_S, TIMEOUT_S

PACKAGES = ("nucleus-python==0.3.0", "websocket-client<0.58", "pickledb==0.9.2")
#: pip's own messages when the registry (or its proxy) cannot be reached.
_UNREACHABLE = ("Could not find a version that satisfies", "No matching distribution found",
                "Failed to establish a new connection", "Temporary failure in name resolution",
                "Network is unreachable", "ConnectTimeoutError", "ReadTimeoutError", "ProxyError",
                "Max retries exceeded")
#: Seeds the module's id draw: with it, two tracked events get the same id (the test checks that).
SEED = 44
TRACKED = 20

SCRIPT = textwrap.dedent('''
    """Drive nucleus-python against a target: argv = ws base URL, appId, seed, events, timeout (s)."""
    import json
    import random
    import sys
    import threading
    import time

    url, app_id, seed, count, timeout_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \\
        float(sys.argv[5])
    random.seed(seed)  # the module draws sessionId and event ids from the random module

    import nucleus
    from nucleus.client import Client

    acked = threading.Condition()
    sent = []
    original_track, original_on_message = Client.track, Client.on_ws_message

    def track(self, *args, **kwargs):  # the module's own track, then note the event it queued
        original_track(self, *args, **kwargs)
        sent.append(dict(self.queue[-1]))

    def on_ws_message(self, message):  # the module's own handler, then wake the waiting script
        original_on_message(self, message)
        with acked:
            acked.notify_all()

    Client.track, Client.on_ws_message = track, on_ws_message
    nucleus.app_id = app_id
    nucleus.api_url = url           # the module connects to api_url + "/app/" + app_id + "/track"
    nucleus.report_interval = 3600  # no background tick: the script says when to report
    deadline = time.monotonic() + timeout_s

    def wait_acked():
        """Until the module's queue is empty: it drops an event when its id comes back in reportedIds."""
        client = nucleus.current_client
        with acked:
            if not acked.wait_for(lambda: not client.queue, max(0.0, deadline - time.monotonic())):
                print(json.dumps({"error": "not acknowledged in time", "queue": client.queue}))
                sys.exit(1)

    nucleus.app_started()  # queues the init and reports it at once, on a new WebSocket
    wait_acked()
    for i in range(count):
        nucleus.track("step-%d" % i, data={"i": i})
    try:
        raise ValueError("interop")
    except ValueError as exc:
        nucleus.track_error(exc)
    nucleus.set_user_id("user@example.com")
    nucleus.current_client.report_data()  # the module's tick: sends its whole queue on the open socket
    wait_acked()
    nucleus.current_client.ws.close()
    print(json.dumps({"sent": sent}))
''')


@pytest.fixture(scope="session")
def nucleus_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a virtual environment with nucleus-python 0.3.0 (built once per session)."""
    venv = tmp_path_factory.mktemp("nucleus-python") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True,
                   timeout=PROCESS_TIMEOUT_S)
    python = venv / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          "--timeout", str(int(TIMEOUT_S)), "--retries", "1", *PACKAGES],
                         capture_output=True, text=True, timeout=5 * PROCESS_TIMEOUT_S)
    if pip.returncode != 0:
        output = pip.stdout + pip.stderr
        last = output.strip().splitlines()[-1] if output.strip() else f"exit {pip.returncode}"
        if any(marker in output for marker in _UNREACHABLE):
            pytest.skip(f"pip cannot reach the package registry for {' '.join(PACKAGES)}: {last}")
        pytest.fail(f"pip install {' '.join(PACKAGES)} failed: {last}")
    return python


def _drive(python: Path, url: str, app_id: str, home: Path) -> list[dict[str, Any]]:
    """Run the script; the events the module sent, all acknowledged."""
    script = home / "drive_nucleus.py"
    script.write_text(SCRIPT)
    cache = home / "cache"
    cache.mkdir()
    # The module keeps its queue in appdirs.user_cache_dir(): a directory of the test's own.
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(cache)}
    env.pop("PYTHONPATH", None)
    ws_url = "ws" + url[len("http"):]
    done = subprocess.run([str(python), str(script), ws_url, app_id, str(SEED), str(TRACKED), str(TIMEOUT_S)],
                          capture_output=True, text=True, env=env, cwd=home, timeout=PROCESS_TIMEOUT_S)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, f"the module's script failed: {lines[-1:] or done.stderr[-2000:]}"
    sent: list[dict[str, Any]] = json.loads(lines[-1])["sent"]
    return sent


def test_nucleus_python_sessions_are_acked_and_stored(nucleus_python: Path, target_factory: TargetFactory,
                                                      app_id: str, tmp_path: Path) -> None:
    """Every event nucleus-python 0.3.0 sends ("arch": 64 on init and error, ids that collide) is acked,
    stored durably and counted; none is refused; its session starts with its init."""
    t = target_factory(store=str(tmp_path / "events.sqlite3"))
    sent = _drive(nucleus_python, t.url, app_id, tmp_path)

    kinds = Counter(e["type"] for e in sent)
    assert kinds == {"init": 1, "event": TRACKED, "error": 1, "userid": 1}, kinds
    assert sent[0]["arch"] == 64 and sent[0]["machineId"]  # what the target used to refuse
    ids = [e["id"] for e in sent]
    assert len(set(ids)) < len(ids), "the seed no longer makes two events share an id"
    st = stats(t, app_id)
    assert st["rejected"]["total"] == 0, st["rejected"]
    assert (st["stored"]["total"], st["acked"], st["duplicates"]) == (len(sent), len(sent), 0)
    assert (st["sessions"], st["orphans"], st["devices"]) == (1, 0, 1)
    assert st["stored"]["by_type"] == dict(kinds)
    assert sorted(stored_ids(t, app_id)) == sorted(ids)
