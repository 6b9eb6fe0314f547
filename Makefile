# The two commands: `make demo` and `make test` (and `make bench`, the benchmarks). Each
# creates or refreshes .venv, installs the project into it and prepares the dbt manifest,
# then runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.wattline-installed
DBT_SOURCES := $(shell find dbt_project -path dbt_project/target -prune -o -type f \( -name '*.sql' -o -name '*.yml' -o -name '*.csv' \) -print)
MANIFEST := dbt_project/target/manifest.json

# Tools the project runs as subprocesses (dbt, dagster-webserver) come from the venv.
export PATH := $(abspath $(BIN)):$(PATH)

ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test bench install manifest up validate clean browser

demo: $(MANIFEST)
	$(BIN)/wattline demo $(ARGS)

# Lint first (one style, configured in pyproject.toml), then the suite.
test: $(MANIFEST) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Every benchmark at a 2-core size (about 20 minutes), then one table of every figure
# against its goal; exits non-zero when a goal is missed.
bench: $(MANIFEST)
	$(BIN)/python bench/all.py $(ARGS)

up: $(MANIFEST)
	$(BIN)/wattline up $(ARGS)

validate: $(MANIFEST)
	$(BIN)/dagster definitions validate -w workspace.yaml

install: $(STAMP)

manifest: $(MANIFEST)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The manifest is prepared once here, never at code-location load.
$(MANIFEST): $(STAMP) $(DBT_SOURCES)
	$(BIN)/wattline prepare

# The browser test drives Debian's Chromium (Playwright never downloads a browser here).
# Installed as root or with password-less sudo; elsewhere that test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; else \
	    echo "note: chromium is not installed and cannot be without root; the browser test will be skipped"; exit 0; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null \
	    || echo "note: installing chromium failed; the browser test will be skipped"; }

clean:
	rm -rf $(VENV) dbt_project/target dbt_project/logs
