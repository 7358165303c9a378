# Two entry points for a fresh clone where only python3 >= 3.11 exists.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# installed once, and again only when the dependencies change (the install is editable)
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## make demo: install, then generate data, train, score and print the at-risk list
demo: install
	$(BIN)/churnkit demo --dir demo

## make test: install the test tools, lint, then run the whole suite
test: install-test
	$(BIN)/ruff check src tests
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache
