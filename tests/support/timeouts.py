"""The one constant every wait of the test suite scales from.

No test sleeps to synchronise and none asserts a duration: each waits for what it expects, and gives up
after a multiple of ``TIMEOUT_S``, long enough that a slow shared machine never trips it and a hang still
ends. (pyproject.toml puts tests/support on the import path of pytest and mypy.)
"""

#: How long a test waits for one expected thing (an ack, a reply, a process's line) before it fails.
TIMEOUT_S = 20.0
#: How long a test waits for a whole process to start and finish (a fresh interpreter, Locust, a short run).
PROCESS_TIMEOUT_S = 3 * TIMEOUT_S
