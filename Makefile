# The two commands: `make demo` and `make test`. Each creates or refreshes .venv,
# installs the project into it and prepares the dbt manifest, then runs.
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

.PHONY: demo test install manifest up validate clean

demo: $(MANIFEST)
	$(BIN)/wattline demo $(ARGS)

test: $(MANIFEST)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

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

clean:
	rm -rf $(VENV) dbt_project/target dbt_project/logs
