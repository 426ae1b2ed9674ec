# offload_spawner: one entry per job. `make demo` and `make test` set up
# everything they need on a fresh machine (pip, npm, Debian's chromium) before they run.
# `make test` also builds the test bed's Kubernetes binaries, the real
# interLink components and helm (Go toolchain needed; side by side, about
# 13 min on 2 cores the first time, cached afterwards) because the e2e tests in
# tests/e2e run against them; `make test` and `make e2e` write
# build/e2e-stack.json (components, versions, counts).
#
# Everything Python runs in a virtual environment inside the repository
# (`.venv`, or VENV=...), made from BOOTSTRAP_PYTHON and holding only what
# setup.cfg declares: a package that the machine's own Python happens to have
# cannot hide a missing dependency.
BOOTSTRAP_PYTHON ?= python3
VENV ?= .venv
PYTHON := $(abspath $(VENV))/bin/python
PIP := $(PYTHON) -m pip --disable-pip-version-check
# The venv's scripts (offload-spawner, jupyterhub-singleuser, jupyter) come first.
export PATH := $(abspath $(VENV))/bin:$(PATH)
# Nothing from outside the venv on Python's import path.
unexport PYTHONPATH PYTHONHOME PYTHONUSERBASE
INSTALLED := $(VENV)/.installed

.PHONY: setup prepare lint test demo bench check-examples testbed-build helm-build interlink-build k8s-plugin-build testbed e2e

$(INSTALLED): setup.cfg pyproject.toml
	test -x $(PYTHON) || $(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[test]"
	touch $@

setup: $(INSTALLED)
	@command -v configurable-http-proxy >/dev/null 2>&1 || npm install --global --no-fund --no-audit configurable-http-proxy
	@test -d testbed/oidc/node_modules/oidc-provider || (cd testbed/oidc && npm ci --no-fund --no-audit --silent)
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	@# A real SLURM cluster for the e2e tests of the real interLink stack (testbed/slurm.py).
	@(test -x /usr/sbin/slurmctld && test -x /usr/sbin/slurmd && test -x /usr/sbin/munged) || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge)

# Set-up, lint and the four builds run side by side (make -j): a cold build
# keeps a core busy only part of the time (module downloads, single-threaded
# links), so together they take little longer than the longest alone. Each
# target's output is printed in one piece when it ends (--output-sync).
prepare:
	@$(MAKE) --no-print-directory -j6 --output-sync=target setup lint testbed-build helm-build interlink-build k8s-plugin-build

# Two pytest-xdist workers (tests/xdist_scheduling.py): an e2e file runs whole
# in one worker, and each worker that runs e2e files has its own test bed.
test: prepare
	$(PYTHON) -m pytest -q -p no:cacheprovider -n 2 --durations=15

# Lint, format and type checks (pyproject.toml): `make test` runs them first.
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy offload_spawner

# kube-apiserver, kube-scheduler, kube-controller-manager and etcd, built from
# Go modules into ~/.cache/offload-spawner/testbed (idempotent).
testbed-build:
	testbed/build.sh

# helm v3.19.0 from Go modules into ~/.cache/offload-spawner/helm (idempotent,
# ~2 min the first time): tests/test_z2jh_chart.py lints and renders the
# Zero-to-JupyterHub chart with helm-values/ through it.
helm-build:
	testbed/build_helm.sh

# interLink's virtual kubelet and API server and the interLink SLURM plugin,
# built from the upstream sources (OFFLOAD_UPSTREAM_DIR, else ../shared/upstream,
# else cloned) into ~/.cache/offload-spawner/interlink (~3+ min cold, cached).
# Without local sources and without a way to clone them this is not an error:
# the tests that need them skip (a build that fails on sources at hand is one).
interlink-build:
	@testbed/build_interlink.sh || { ! testbed/build_interlink.sh --source-dir >/dev/null 2>&1 && \
		echo "interlink: not built: no local sources and no clone (see above). The tests of the real interLink stack skip, saying how to get them; make demo uses the imitation."; }

# interLink's Kubernetes plugin (Python, FastAPI) and its plugin SDK in a
# Python >= 3.12 venv of their own under ~/.cache/offload-spawner/k8s-plugin
# (~2.5 min cold, cached). Only when their sources and a Python 3.12 are found
# (`--check` prints what is missing); without them the e2e test of that plugin skips.
k8s-plugin-build:
	@if testbed/build_k8s_plugin.sh --check; then testbed/build_k8s_plugin.sh; fi

# A real control plane + interLink-style virtual nodes + local virtual kubelet,
# until Ctrl-C; prints the admin and hub kubeconfig paths.
testbed: setup testbed-build
	$(PYTHON) -m testbed up

e2e:
	@$(MAKE) --no-print-directory -j4 --output-sync=target setup testbed-build interlink-build k8s-plugin-build
	$(PYTHON) -m pytest -q -p no:cacheprovider -n 2 tests/e2e

demo:
	@$(MAKE) --no-print-directory -j3 --output-sync=target setup testbed-build interlink-build
	$(PYTHON) demo/run.py

# Figures, not pass/fail (< 10 min on 2 cores; not part of `make test`). The test bed
# figures need its binaries (testbed-build); without them that section says so.
bench: setup
	$(PIP) install --quiet -e ".[test,bench]"
	$(PYTHON) benchmarks/run.py

# Every example configuration in docs/examples/ passes `offload-spawner check`.
check-examples: setup
	@for f in docs/examples/*.py docs/examples/*.yaml; do test -e "$$f" || continue; echo "== $$f"; offload-spawner check -f "$$f" || exit 1; done

# Regenerate docs/reference.md from the traits' help text and the catalog
# models (tests/test_reference.py fails while it is stale).
.PHONY: docs
docs:
	$(PYTHON) docs/gen_reference.py
