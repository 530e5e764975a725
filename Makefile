# fer-edge: train -> convert -> run on the edge. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= config.yaml
export PYTHONPATH := $(CURDIR)
export TF_CPP_MIN_LOG_LEVEL ?= 2

# Optional overrides (empty = take config.yaml's value)
DATA ?=
MODEL ?=
ARCH ?=
EPOCHS ?=
FRESH ?=
FINISH ?=
EXTEND ?=
PRECISION ?=
SOURCE ?=
LOG ?=
SPLIT ?= test
PI ?=
ARGS ?=

opt = $(if $(strip $(2)),$(1) $(2))

.PHONY: help setup setup-edge train distill average tflite eval run web report lint test fuzz bench pi-check wheel deploy install-service uninstall-service clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# ---- virtual environment (created on demand by the targets that need it)
$(VENV)/.edge-installed: requirements-edge.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-edge.txt
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt requirements-edge.txt requirements-train.txt requirements-test.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@ $(VENV)/.edge-installed

$(VENV)/.report-installed: $(VENV)/.edge-installed requirements-report.txt
	$(PY) -m pip install -q -r requirements-report.txt
	@touch $@

setup: $(VENV)/.dev-installed  ## create .venv with everything (train, convert, edge, tests)

setup-edge: $(VENV)/.edge-installed  ## create .venv with the edge runtime only (no TensorFlow)

# ---- train -> convert
train: $(VENV)/.dev-installed  ## train on FER-2013 (resumes an interrupted run; FRESH=1 starts over; FINISH=1 ends it now; EXTEND=N trains a finished run on to N epochs; DATA= ARCH= EPOCHS=)
	$(PY) -m fer_edge.train --config $(CONFIG) $(call opt,--data,$(DATA)) $(call opt,--arch,$(ARCH)) \
		$(call opt,--epochs,$(EPOCHS)) $(if $(FRESH),--fresh) $(if $(FINISH),--finish) $(call opt,--extend,$(EXTEND)) $(ARGS)

average: $(VENV)/.dev-installed  ## try the weight average of a finished run's kept epochs: make average RUN=runs/<run> [LAST=N]
	@test -n "$(RUN)" || { echo "usage: make average RUN=runs/<timestamp>-<arch> [LAST=N]"; exit 2; }
	$(PY) -m fer_edge.train.finalize $(RUN) $(call opt,--last,$(LAST)) $(ARGS)

distill: $(VENV)/.dev-installed  ## the distillation recipe (teachers, their ensemble, the student, its final fit, their conversion), resumable: make distill [RECIPE=distill.yaml] [ARGS=--status]
	$(PY) -m fer_edge.train.distill $(or $(RECIPE),distill.yaml) --config $(CONFIG) $(ARGS)

eval: $(VENV)/.dev-installed  ## evaluate a Keras model: make eval MODEL=runs/<run>/model.keras [DATA=] [SPLIT=test]
	@test -n "$(MODEL)" || { echo "usage: make eval MODEL=runs/<run>/model.keras [DATA=path] [SPLIT=test|val|train]"; exit 2; }
	$(PY) -m fer_edge.train.evaluate --config $(CONFIG) --model $(MODEL) --split $(SPLIT) $(call opt,--data,$(DATA)) $(ARGS)

tflite: $(VENV)/.dev-installed  ## convert the newest run's model to int8 TFLite + contract (MODEL= PRECISION=float32)
	$(PY) -m fer_edge.convert --config $(CONFIG) $(call opt,--model,$(MODEL)) $(call opt,--precision,$(PRECISION)) \
		$(call opt,--data,$(DATA)) $(ARGS)

# ---- edge
run: $(VENV)/.edge-installed  ## run the edge loop headless, logging emotions to CSV (SOURCE= LOG= MODEL=)
	$(PY) -m fer_edge.edge --config $(CONFIG) --headless $(call opt,--source,$(SOURCE)) $(call opt,--log,$(LOG)) \
		$(call opt,--model,$(MODEL)) $(ARGS)

web: $(VENV)/.edge-installed  ## serve the photo-upload page and API alone on 127.0.0.1:8080
	$(PY) -m fer_edge.edge.web --config $(CONFIG) $(call opt,--model,$(MODEL)) $(ARGS)

report: $(VENV)/.report-installed  ## the emotion report of a CSV log: make report LOG=logs/emotions.csv [ARGS="--every 5min --from 2026-11-26T08:00"]
	@test -n "$(LOG)" || { echo "usage: make report LOG=path/to/emotions.csv [ARGS=\"--every 1h --out DIR\"]"; exit 2; }
	$(PY) -m fer_edge.tools.report $(LOG) $(ARGS)

# ---- quality
lint: $(VENV)/.dev-installed  ## ruff and mypy over fer_edge (their settings: pyproject.toml)
	$(PY) -m ruff check fer_edge
	$(PY) -m mypy

test: $(VENV)/.dev-installed lint  ## lint, then run the test suite
	$(PY) tests/system_deps.py
	$(PY) -m pytest -q tests $(ARGS)

fuzz: $(VENV)/.dev-installed  ## fuzz the image header and report row parsers for longer (FUZZ_SECONDS=120 each; FUZZ_SEED= repeats a run)
	FUZZ_SECONDS=$(or $(FUZZ_SECONDS),120) $(PY) -m pytest -q tests/test_fuzz.py $(ARGS)

pi-check: $(VENV)/.dev-installed  ## the Raspberry Pi path emulated here (root): arm64 userland under qemu, the service under a booted systemd (docs/pi-check.md)
	$(PY) tests/system_deps.py --pi-check
	$(PY) scripts/pi_check.py $(ARGS)

bench: $(VENV)/.dev-installed  ## run the benchmarks and rewrite BENCHMARKS.md
	$(PY) tests/system_deps.py
	$(PY) -m bench $(ARGS)

# `make wheel` needs only `build` (a few MB, in .cache/build-venv); build installs setuptools into a
# throw-away environment of its own (PEP 517 isolation), so the wheel never waits for the dev set.
BUILD_VENV := .cache/build-venv
$(BUILD_VENV)/.installed:
	@test -x $(BUILD_VENV)/bin/python || $(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/python -m pip install -q --disable-pip-version-check 'build>=1.2'
	@touch $@

wheel: $(BUILD_VENV)/.installed  ## build the pip package: dist/fer_edge-<version>-py3-none-any.whl
	rm -f dist/fer_edge-*.whl
	env -u PYTHONPATH $(BUILD_VENV)/bin/python -m build --wheel --outdir dist .

# ---- service
deploy:  ## deploy to a Raspberry Pi: the wheel, the model and the unit (make deploy PI=user@host)
	@test -n "$(PI)" || { echo "usage: make deploy PI=user@host"; exit 2; }
	$(MAKE) --no-print-directory wheel
	scripts/deploy.sh $(PI) $(ARGS)

install-service: wheel  ## install the wheel as the systemd service on this machine and start it (sudo)
	scripts/install.sh $(ARGS)

uninstall-service:  ## stop and remove the systemd service from this machine (keeps the CSV log; ARGS=--purge deletes it)
	scripts/uninstall.sh $(ARGS)

clean:  ## remove caches (keeps runs/ and models/)
	rm -rf .cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
