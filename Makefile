# django-perf-workshop: `make lab` for learners, `make test` for everything CI checks.
# Each target sets up the virtualenv first, so both work on a fresh machine with Python and make.

PYTHON ?= python3
VENV ?= .venv
# Keep in step with pyproject's requires-python, environment.yml and binder/runtime.txt
# (tests/test_environment.py checks that they agree).
MIN_PYTHON := 3.11
# uv only recompiles the lock (`make lock`); pinned so two people get the same resolver.
UV_VERSION ?= 0.13.9

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup doctor lab budget docs test test-small test-default test-scale test-django61 site notebooks verify bench-seed lock clean FORCE

# A virtualenv made by another Python than the one asked for is rebuilt, not reused. "Asked
# for" means PYTHON given on the command line or in the environment: without it, the existing
# $(VENV) is kept whatever made it, so a plain `make lab` after `make lab PYTHON=python3.12` does
# not flip it back to python3, and nothing is rebuilt unless someone names an interpreter.
# Compared by major.minor: a patch release of the same Python keeps working in the same venv.
python_version = $(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifneq ($(origin PYTHON),file)
ifneq ($(wildcard $(BIN)/python),)
VENV_PYTHON_VERSION := $(call python_version,$(BIN)/python)
WANTED_PYTHON_VERSION := $(call python_version,$(PYTHON))
ifneq ($(VENV_PYTHON_VERSION),$(WANTED_PYTHON_VERSION))
REBUILD_VENV := 1
endif
endif
endif

help:
	@echo "django-perf-workshop"
	@echo
	@echo "  make doctor      set up, then check this machine for every lesson: one fix per problem"
	@echo "  make lab         set up, build the small database, open JupyterLab on lesson 00"
	@echo "  make test        set up, lint, run the unit tests and every notebook (nbval), at small and default"
	@echo "  make test-small    only the notebooks, at the small scale"
	@echo "  make test-default  only the notebooks, at the default scale (10x the data)"
	@echo "  make test-django61  the same tests on Django 6.1 (needs python3.12+, NEXT_PYTHON=...)"
	@echo "  make site        run the shop in a browser with django-debug-toolbar (PORT=8000)"
	@echo "  make docs        build the workshop as a static site in build/docs (offline), check it in Chromium"
	@echo "  make notebooks   re-execute every notebook in place, keep the most typical of RUNS=5 runs"
	@echo "  make budget      run every lesson once at small: wall time and peak memory (RECORD=1 keeps it)"
	@echo "  make verify      re-run every notebook (not saved): do the committed ratios reproduce?"
	@echo "  make bench-seed  build the large template on SQLite and PostgreSQL, report rows/s (~30 s)"
	@echo "  make lock        recompile requirements.txt from requirements.in (uv $(UV_VERSION)), copy it to binder/"
	@echo "  make setup       only create $(VENV) and install the pinned packages"
	@echo "  make clean       remove $(VENV)"
	@echo
	@echo "Variables: PYTHON=$(PYTHON) (3.11+), VENV=$(VENV); env PERFLAB_SCALE=tiny|small|default|large"
	@echo "A PYTHON of another version than $(VENV)'s rebuilds $(VENV) (e.g. make lab PYTHON=python3.12)."

# The virtualenv itself. Checked once, when it is created: a too-old Python stops here with a
# message instead of failing later inside pip, and before a mismatched $(VENV) is removed.
$(BIN)/python: $(if $(REBUILD_VENV),FORCE)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < tuple(map(int, "$(MIN_PYTHON)".split("."))))' \
	  2>/dev/null || { \
	  echo >&2 "error: '$(PYTHON)' is missing or older than Python $(MIN_PYTHON)" \
	    "(found: $$($(PYTHON) --version 2>/dev/null || echo nothing))."; \
	  echo >&2 "Install Python $(MIN_PYTHON)+ and run again, e.g. make $(or $(MAKECMDGOALS),lab) PYTHON=python3.12"; \
	  exit 1; }
	$(if $(REBUILD_VENV),@echo "note: $(VENV) uses Python $(or $(VENV_PYTHON_VERSION),?)" \
	  "but PYTHON=$(PYTHON) is $(WANTED_PYTHON_VERSION): rebuilding $(VENV)"; rm -rf $(VENV))
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo >&2 "error: could not create $(VENV) (on Debian/Ubuntu: apt install python3-venv)"; exit 1; }

# The pinned packages and the project (editable). Re-runs when the lock or pyproject changes,
# or into a rebuilt virtualenv (make would otherwise go by the stamp it saw before the rebuild).
# uv installs the same lock as pip would, several times faster (a fresh clone to a running
# JupyterLab in well under 30 s on a warm cache); pip only installs uv itself.
$(STAMP): requirements.txt pyproject.toml $(if $(REBUILD_VENV),FORCE) | $(BIN)/python
	@echo "Installing the pinned packages into $(VENV) with uv (a while the first time)..."
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --disable-pip-version-check -q uv==$(UV_VERSION)
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -r requirements.txt -e .
	@touch $@

setup: $(STAMP)

# The preflight a learner runs before the day: Python, packages, servers, tools, ports, disk, memory.
doctor: $(STAMP)
	$(BIN)/python -m perflab doctor

# JupyterLab opens lesson 00 with the repository as its root, so the README, the glossary and the
# demo project are one click away. LAB_ARGS passes options on (e.g. LAB_ARGS=--no-browser).
lab: $(STAMP)
	@echo "Preparing the $${PERFLAB_SCALE:-small} database..."
	@out=$$($(BIN)/python -m perflab seed --scale $${PERFLAB_SCALE:-small} 2>&1) \
	  || { printf '%s\n' "$$out" >&2; exit 1; }
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) --ServerApp.root_dir="$(CURDIR)" \
	  $(LAB_ARGS) notebooks/00-start-here.ipynb

# The unit tests, then every notebook (nbval) at the small scale (test-small), then at the
# default scale (test-default). The notebooks run in a pytest of their own, in a state folder of
# their own: each lesson's memory peak then counts its own servers, not a PostgreSQL the unit
# tests left attached to a shared pytest process. The orphan check runs even when pytest fails,
# so a leaked server is reported either way.
test: $(STAMP)
	$(BIN)/ruff check .
	@status=0; \
	echo "$(BIN)/python -m pytest -p no:cacheprovider tests"; \
	$(BIN)/python -m pytest -p no:cacheprovider tests || status=$$?; \
	if [ $$status -eq 5 ]; then \
	  echo >&2 "make test: pytest collected no tests (exit 5). That is a failure here."; \
	fi; \
	$(MAKE) --no-print-directory test-small || { [ $$status -ne 0 ] || status=1; }; \
	$(MAKE) --no-print-directory test-default || { [ $$status -ne 0 ] || status=1; }; \
	echo "$(BIN)/python -m perflab services check-orphans"; \
	$(BIN)/python -m perflab services check-orphans || { [ $$status -ne 0 ] || status=1; }; \
	exit $$status

# The lessons at one scale (SCALE), in a state folder of their own whose templates are built
# first, so no checked cell shows a build in progress. At default (ten times the data), cells
# tagged scale-dependent print the data's own numbers: there they run, but aren't compared.
SCALE ?= small
PYTEST ?= $(BIN)/python
test-small:
	@$(MAKE) --no-print-directory test-scale SCALE=small
test-default:
	@$(MAKE) --no-print-directory test-scale SCALE=default
test-scale: $(STAMP)
	@home=$$(mktemp -d); status=0; \
	echo "PERFLAB_SCALE=$(SCALE) $(PYTEST) -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env notebooks"; \
	PERFLAB_HOME=$$home $(PYTEST) -m perflab seed --scale $(SCALE) || status=$$?; \
	PERFLAB_HOME=$$home $(PYTEST) -m perflab seed --scale $(SCALE) --database postgres \
	  || [ "$${PERFLAB_STRICT:-0}" != 1 ] || status=1; \
	[ $$status -ne 0 ] || PERFLAB_HOME=$$home PERFLAB_SCALE=$(SCALE) \
	  $(PYTEST) -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env notebooks || status=$$?; \
	PERFLAB_HOME=$$home $(PYTEST) -m perflab services stop-all >/dev/null || status=1; \
	rm -rf "$$home"; \
	exit $$status

# The shop as a real site, with django-debug-toolbar (http://127.0.0.1:$(PORT)/).
PORT ?= 8000
site: $(STAMP)
	$(BIN)/python -m perflab site --scale $${PERFLAB_SCALE:-small} --port $(PORT)

# The newest Django: the same lock, then Django 6.1 on top, in a virtualenv of its own (Django
# 6.x needs Python 3.12+). Unit tests and the notebooks that do not need a 5.2-only package.
NEXT_PYTHON ?= python3.12
NEXT_DJANGO ?= django==6.1.*
NEXT_VENV ?= .venv-django61
test-django61:
	@$(NEXT_PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 12))' 2>/dev/null || { \
	  echo >&2 "error: Django 6.1 needs Python 3.12+; '$(NEXT_PYTHON)' is missing or older" \
	    "(try make test-django61 NEXT_PYTHON=python3.13)."; exit 1; }
	test -x $(NEXT_VENV)/bin/python || $(NEXT_PYTHON) -m venv $(NEXT_VENV)
	test -x $(NEXT_VENV)/bin/uv || $(NEXT_VENV)/bin/python -m pip install --disable-pip-version-check -q uv==$(UV_VERSION)
	$(NEXT_VENV)/bin/uv pip install -q --compile-bytecode --python $(NEXT_VENV)/bin/python -r requirements.txt -e .
	$(NEXT_VENV)/bin/uv pip install -q --compile-bytecode --python $(NEXT_VENV)/bin/python "$(NEXT_DJANGO)"
	# django-postgres-extra requires Django < 6.0: lesson 11 uses plain SQL partitioning here.
	$(NEXT_VENV)/bin/uv pip uninstall -q --python $(NEXT_VENV)/bin/python django-postgres-extra
	$(NEXT_VENV)/bin/python -m pip check
	@$(NEXT_VENV)/bin/python -c 'import django, sys; print("Django", django.get_version(), "on Python", sys.version.split()[0])'
	@status=0; \
	$(NEXT_VENV)/bin/python -m pytest -p no:cacheprovider tests || status=$$?; \
	$(MAKE) --no-print-directory test-scale SCALE=small PYTEST=$(NEXT_VENV)/bin/python \
	  || { [ $$status -ne 0 ] || status=1; }; \
	$(NEXT_VENV)/bin/python -m perflab services check-orphans || { [ $$status -ne 0 ] || status=1; }; \
	exit $$status

# The workshop as a static site, from the committed outputs (nothing runs), then every page,
# chart and internal link checked in a headless Chromium.
docs: $(STAMP)
	$(BIN)/python -m perflab docs --check

# Each lesson runs RUNS times; the run whose farthest ratio sits closest to the runs' medians is kept.
RUNS ?= 5
notebooks: $(STAMP)
	$(BIN)/python -m perflab notebooks --runs $(RUNS)

# Each lesson once at small, not saved: wall time and peak memory of its whole process tree.
# RECORD=1 keeps the run in notebooks/recorded/budget.json and the README's budget table.
budget: $(STAMP)
	$(BIN)/python -m perflab budget $(if $(RECORD),--record)

# Re-run the lessons without saving and check every committed ratio against today's.
verify: $(STAMP)
	$(BIN)/python -m perflab verify

bench-seed: $(STAMP)
	$(BIN)/python -m perflab bench-seed $(BENCH_ARGS)

lock: | $(BIN)/python
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --disable-pip-version-check -q uv==$(UV_VERSION)
	$(BIN)/uv pip compile --python-version $(MIN_PYTHON) requirements.in -o requirements.txt \
	  --custom-compile-command "make lock"
	@{ echo "# The pip lock (requirements.txt), copied here by make lock. repo2docker installs this file"; \
	  echo "# before it copies the repository, so Binder reuses the installed packages until the"; \
	  echo "# pins change (a -r ../requirements.txt line would reinstall them after any edit)."; \
	  grep -v '^#' requirements.txt; } > binder/requirements.txt

clean:
	rm -rf $(VENV) $(NEXT_VENV)

FORCE:
