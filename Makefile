# Developer entry points. Everything runs from the project venv in .venv.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv run test schemas bench

venv: $(STAMP)

# Re-install whenever pyproject.toml changes (it is newer than the stamp).
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: venv
	$(VENV)/bin/mutator dev up

test: venv
	$(PY) -m pytest -q
	$(VENV)/bin/lint-imports

schemas: venv
	$(PY) -m contracts.export

bench: venv
	$(PY) benchmarks/pipeline.py
