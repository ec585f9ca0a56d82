"""Who may join a run: a worker must run what its master runs (user classes, locustfile, version).

Locust lets any worker connect and dispatches users to it by class name. A worker started with another
locustfile then fails on a class it does not have (``KeyError: 'WsDevice'``) while the master runs the
rest of the fleet and reports success. So each worker says hello with its ``Identity`` (runstate) as it
connects, and the master compares it with its own::

    worker                                                   master
    ── "nucleus_hello" {identity} ─────────────────────────▶  same: verified
                                                              differs: one line, and the worker is dropped
    ◀── "nucleus_refused" {reason} ───────────────────────    from Locust's list before any user is
    one line, exit 2                                          dispatched to it

A worker's hello can arrive before the master listens (both start at once): the master asks every
connected worker again when it starts listening, and before a run's first dispatch it waits (at most
``HELLO_WAIT_S``) for every connected worker's verdict, refusing the silent ones. A worker that joins a
live run may get users before its hello is answered: it checks the master's identity in the run's spec
(runstate.RunSpec) before starting any, and leaves the same way.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

import gevent
from locust.env import Environment
from locust.runners import STATE_RUNNING, MasterRunner, WorkerRunner

import bench
from bench.locust_glue import messages
from bench.locust_glue.runstate import Identity

logger = logging.getLogger("nucleus_bench")

#: How long a starting run waits for the hello of a connected worker before refusing it.
HELLO_WAIT_S = 5.0
#: Exit code of a worker refused by its master (another locustfile, user classes or version): bad input.
EXIT_REFUSED = 2


def identity_of(environment: Environment) -> Identity:
    """This process's user classes, locustfiles (names and contents) and nucleus-bench version."""
    classes = list(environment.available_user_classes or ()) or [c.__name__ for c in environment.user_classes]
    files = []
    for path in environment.parsed_locustfiles or []:
        try:
            data = Path(path).read_bytes()
        except OSError:
            data = b""
        files.append((os.path.basename(path), data))
    return Identity.of(bench.__version__, classes, files)


def await_hellos(runner: MasterRunner, verified: set[str]) -> None:
    """Master, before a run's first dispatch: every connected worker has said hello (asked once more);
    those still silent after ``HELLO_WAIT_S`` are refused (another version, or no plugin)."""
    deadline = time.monotonic() + HELLO_WAIT_S
    asked: set[str] = set()
    while pending := [node for node in runner.clients if node not in verified]:
        for node in set(pending) - asked:
            runner.send_message(messages.HELLO_MSG, None, client_id=node)
            asked.add(node)
        if time.monotonic() >= deadline:
            silent = (f"it said no nucleus-bench hello within {HELLO_WAIT_S:g} s (another nucleus-bench "
                      "version, or a locustfile without the plugin)")
            for node in pending:
                refuse(runner, node, silent)
            return
        gevent.sleep(0.05)


def refuse(runner: MasterRunner, node: str, reason: str) -> None:
    """Master: tell a worker it is refused and forget it, as Locust forgets a worker that quits (users it
    was given go to the others), but without stopping a master that waits for workers."""
    index = runner.worker_indexes.get(node, -1)
    logger.error("nucleus-bench: refused worker %d (%s): %s", index, node, reason)
    refusal = {"reason": f"the master refused this worker: {reason}"}
    runner.send_message(messages.REFUSED_MSG, refusal, client_id=node)
    if node not in runner.clients:
        return
    client = runner.clients[node]
    del runner.clients[node]
    dispatcher = runner._users_dispatcher
    if dispatcher is not None:
        dispatcher.remove_worker(client)
        if not dispatcher.dispatch_in_progress and runner.state == STATE_RUNNING:
            gevent.spawn(runner.start, runner.target_user_count, runner.spawn_rate)


def leave(environment: Environment, reason: str) -> NoReturn:
    """Worker: refuse the master's run in one line, tell the master, and exit 2 before any user starts.

    SystemExit leaves the greenlet that handles the master's messages; gevent passes it on to the main
    greenlet, so the process exits with this code (no user was started, nothing is lost).
    """
    sys.stderr.write(f"nucleus-bench: error: {reason}\n")
    sys.stderr.flush()
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.send_message("quit")  # as Locust's worker says when it quits: the master drops it
    raise SystemExit(EXIT_REFUSED)
