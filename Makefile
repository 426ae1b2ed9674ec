# offload_spawner: one entry per job. `make demo` and `make test` set up
# everything they need on a fresh machine (pip, npm) before they run.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: setup test demo bench check-contract

setup:
	$(PIP) install --quiet --disable-pip-version-check -e ".[test]"
	@command -v configurable-http-proxy >/dev/null 2>&1 || npm install --global --no-fund --no-audit configurable-http-proxy

test: setup
	$(PYTHON) -m pytest -q -p no:cacheprovider

demo: setup
	$(PYTHON) demo/run.py

bench: setup
	$(PYTHON) benchmarks/run.py

check-contract: setup
	$(PYTHON) -c "import re,pathlib;p=pathlib.Path('../shared/design/CONTRACT.md');pathlib.Path('/tmp/contract_config.py').write_text(re.search(r'\`\`\`python\n(.*?)\`\`\`',p.read_text(),re.S).group(1))"
	offload-spawner check -f /tmp/contract_config.py
