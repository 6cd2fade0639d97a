# Two commands on a fresh machine (only Python needed):
#   make demo   set up .venv and run the main job on the built-in phantom data
#   make test   set up .venv if missing and run every test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= runs/demo

.PHONY: setup demo test clean browser

$(STAMP): pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: a bare `torch` would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/python -m elastogan.demo --out $(DEMO_DIR)

# Debian's chromium for the app's browser tests (Playwright's Python package drives it through
# executable_path; `playwright install` is never run). Root on CI and dev machines.
browser:
	test -x /usr/bin/chromium || (apt-get update -q && apt-get install -y -q chromium)

# ELASTOGAN_REQUIRE_BROWSER: here a missing chromium fails the browser tests instead of skipping them.
test: setup browser
	ELASTOGAN_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
