VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint proto bench bench-peer bench-scaleout bench-one bench-storm venv clean chromium

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/convoy demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy common coordinator agent cli
	$(VENV)/bin/lint-imports

# The dashboard's browser tests drive Debian's Chromium (Playwright never downloads a browser
# here). As root it is installed when missing; otherwise the tests skip, except under CI=true.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "chromium is not installed (sudo apt-get install chromium): the dashboard tests will skip"; \
	  fi; }

# Three workers (pytest-xdist) by default: TEST_WORKERS=0 runs in one process. Three on two
# cores because the end-to-end tests spend part of their time waiting on processes and sockets;
# worksteal, because with the default `load` the last minutes ran on one worker while the others
# had finished (measured on 2 cores: 828 s at -n 3 with `load`, the CPU 70% idle in the tail;
# 616 s with worksteal, CI=true, 2026-12-03; 327-483 s on a faster 2-core Intel Xeon the same day).
TEST_WORKERS ?= 3

test: $(STAMP) lint chromium
	$(VENV)/bin/pytest -q --durations=15 -n $(TEST_WORKERS) --dist worksteal

proto: $(STAMP)
	$(PY) -m common.protogen

bench: $(STAMP)
	$(PY) -m bench.run_all

# Salt side by side (not part of `make test` or `make bench`): installs Salt into its own venv in
# a scratch dir (BENCH_PEER_DIR, default $TMPDIR/convoy-bench-peer), N minions and N agents.
# N=20 RUNS=1 make bench-peer for a quick look (prints only).
bench-peer: $(STAMP)
	$(PY) -m bench.peer

# Three replicas on one PostgreSQL (127.0.0.1:5432, or CONVOY_BENCH_PG), N simulated agents
# (default 30,000); BIG=100000 adds the largest fleet the machine holds. N=600 for a quick look.
bench-scaleout: $(STAMP)
	$(PY) -m bench.scaleout --n $${N:-30000} --big $${BIG:-0}

# As many simulated agents as one coordinator holds (default 100,000; SQLite, PG=1 for PostgreSQL;
# HEARTBEAT=120s to lengthen the heartbeat). N=2000 for a quick look (prints only).
bench-one: $(STAMP)
	$(PY) -m bench.one_coordinator --n $${N:-100000} --heartbeat $${HEARTBEAT:-15s} $${PG:+--pg}

# Restart storm (not part of `make test` or `make bench`): N simulated agents (default 10,000) and
# a staggered rollout in flight, the coordinator SIGKILLed and restarted; PG=1 for PostgreSQL.
bench-storm: $(STAMP)
	$(PY) -m bench.storm --n $${N:-10000} $${PG:+--pg}

clean:
	rm -rf $(VENV) build *.egg-info
