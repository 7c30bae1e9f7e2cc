# Two commands do all the set-up on a fresh machine (Python 3.11+, make):
#   make demo   install into .venv, start the embedded stack, replay the bundled incident, show the graph
#   make test   install into .venv and run the test suite against real embedded servers
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

.PHONY: install demo test bench
install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tapio demo

test: $(STAMP)
	$(VENV)/bin/pytest

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/pipeline.py --events 200000
