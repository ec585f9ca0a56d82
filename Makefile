# nucleus-bench: every target installs what it needs first (see `setup`).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup bench browser interop test lint fuzz perf perf-target clean

# Idempotent: re-installs only when the build's inputs changed since the last install (setup.py compiles
# bench/_native/*.c, the C twins of the hot path's per-event steps, into bench/ where a C compiler is found).
setup: $(STAMP)

$(STAMP): pyproject.toml setup.py $(wildcard bench/_native/*.c bench/_native/*.h)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The default benchmark: embedded target, the realistic fleet over WebSocket and HTTP on one seeded stream,
# then the report of that run (report.html and report.md in its directory; the paths are the last lines).
# A run that measured something (exit 0; 1: the accounting failed; 3: an objective was missed) is reported;
# the run's status is make's.
bench: setup
	$(BIN)/nucleus-bench run scenarios/desktop-fleet.toml --transport both --out results; \
	status=$$?; \
	if [ $$status -le 1 ] || [ $$status -eq 3 ]; then $(BIN)/nucleus-bench report --latest results || status=$$?; fi; \
	exit $$status

# The browser tests (the report; Locust's web UI) open pages in Debian's headless Chromium: installed here where apt-get can
# (root), else those tests are skipped and say why.
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "make: chromium is not installed and apt-get cannot install it: the browser tests are skipped"

# The interop test of the official JavaScript module drives nucleus-analytics 4.0.3 under Node: installed here
# with npm where Node is present (pinned by tests/interop/package-lock.json, no install scripts run), else that
# test is skipped and says why.
interop:
	@if command -v node >/dev/null && command -v npm >/dev/null; then \
	  test -f tests/interop/node_modules/nucleus-analytics/package.json || \
	  npm ci --prefix tests/interop --ignore-scripts --no-audit --no-fund --loglevel=error || \
	  echo "make: npm could not install nucleus-analytics: its interop test is skipped"; \
	else echo "make: Node is not installed: the nucleus-analytics interop test is skipped"; fi

test: setup browser interop
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check bench benchmarks tests locustfiles
	$(BIN)/mypy

# The fuzzer of the reference target, longer than the run in `make test`: seeded inputs over both transports
# until FUZZ_INPUTS are sent or FUZZ_SECONDS pass; prints inputs tried, replies by code, the target's RSS
# before and after, and every finding (exit 1 if any). Replay one input: add --only INDEX.
FUZZ_INPUTS  ?= 20000
FUZZ_SECONDS ?= 120
FUZZ_SEED    ?= 1
fuzz: setup
	$(BIN)/python tests/support/fuzzing.py --inputs $(FUZZ_INPUTS) --seconds $(FUZZ_SECONDS) --seed $(FUZZ_SEED)

# Benchmarks, never tests: they print figures and ratios measured side by side in one run. They live in
# benchmarks/ (not installed) and run from the repository root, where `python -m` finds them.
perf-target: setup
	$(BIN)/python -m benchmarks.target

perf: setup
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null) || true
	$(BIN)/python -m benchmarks.client

clean:
	rm -rf $(VENV) build *.egg-info bench/*.so
