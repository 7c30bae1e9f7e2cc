# Two commands do all the set-up on a fresh machine (Python 3.11+, make):
#   make demo   install into .venv, start the embedded stack, replay the bundled incident, show the graph
#   make test   install into .venv, check the layers, lint and types, run the test suite against real embedded servers
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

.PHONY: install demo check cluster node-sources image test bench soak
install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tapio demo

# the layers (import-linter contracts in pyproject.toml), ruff, and a strict type check of core/
check: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# the real test cluster's Kubernetes 1.20.2 binaries (tests/cluster): built once from Debian's source
# package into ~/.cache/tapio (about 15 min on 2 cores), then seconds; skipped where the tests would skip
cluster: $(STAMP)
	PYTHONPATH=tests/support $(VENV)/bin/python -m realcluster.build --if-possible

# the real sources the node collectors are tested against (issue 16: dnsmasq, etcd, a journal...) and the
# headless Chromium the incident pages are tested in (issue 18), from Debian's packages; a note and nothing
# else where root or apt is missing
node-sources: $(STAMP)
	PYTHONPATH=tests/support $(VENV)/bin/python -m nodesources.install --if-possible

# the worker's and the node agent's container images, built with buildah from a debootstrap'ed Debian (no
# Docker, no registry) into ~/.cache/tapio/images as docker-archive tars; rebuilt only when the sources change
# (docker/image.py). tests/cluster/test_chart_deploy.py imports them into the real cluster and installs the chart
image: $(STAMP)
	$(VENV)/bin/python docker/image.py --agent --if-possible

test: check cluster node-sources image
	$(VENV)/bin/pytest

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/pipeline.py --events 200000

# 10 minutes at a steady 2,000 events/s: nothing lost, RSS slopes, graph lag (issue 14)
soak: $(STAMP)
	$(VENV)/bin/python benchmarks/pipeline.py --rate 2000 --events 1200000 --timeout 1800
