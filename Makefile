# Two commands do all the set-up: `make app` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: app test lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamps re-run pip only when a requirements file is newer than the last install.
# The project itself is installed editable, so `nobg` is on the venv's PATH and the
# checkout's code and weights/ are what it runs.
$(VENV)/.runtime-installed: requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt -e .
	touch $@

# Tests also cover the optional Ray engine: the [ray] extra, pinned in requirements-dev.txt.
$(VENV)/.dev-installed: requirements.txt requirements-dev.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt -e ".[ray]"
	touch $(VENV)/.runtime-installed $@

app: $(VENV)/.runtime-installed
	$(PY) -m streamlit run app.py --server.port $(PORT)

# The browser tests drive Debian's Chromium; install it when it is missing.
/usr/bin/chromium:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi

test: $(VENV)/.dev-installed /usr/bin/chromium
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV)/.dev-installed
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# The API and Ray figures need httpx and the [ray] extra: the dev install has them.
bench: $(VENV)/.dev-installed
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
