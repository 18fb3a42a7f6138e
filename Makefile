VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint proto bench bench-peer venv clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/convoy demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy common coordinator agent cli

test: $(STAMP) lint
	$(VENV)/bin/pytest -q --durations=15

proto: $(STAMP)
	$(PY) -m common.protogen

bench: $(STAMP)
	$(PY) -m bench.run_all

# Salt side by side (not part of `make test` or `make bench`): installs Salt into its own venv in
# a scratch dir (BENCH_PEER_DIR, default $TMPDIR/convoy-bench-peer), N minions and N agents.
# N=20 RUNS=1 make bench-peer for a quick look (prints only).
bench-peer: $(STAMP)
	$(PY) -m bench.peer

clean:
	rm -rf $(VENV) build *.egg-info
