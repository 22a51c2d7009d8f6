# driftloop — the two commands a newcomer needs are `make demo` and `make test`.
# Both install what they need (Debian packages, the virtual environment, the
# Kafka jars) and start what they need (Kafka, Redis), then stop what they started.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DL     := $(BIN)/driftloop
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
KEEP ?=
export PIP_DISABLE_PIP_VERSION_CHECK := 1

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# command:debian-package pairs the project needs on the machine
DEBIAN_NEEDS := redis-server:redis-server kcat:kcat java:openjdk-17-jre-headless mvn:maven \
                espeak-ng:espeak-ng sox:sox chromium:chromium
# torch/torchaudio (the audio extra) are several GB from PyPI: installed once per machine,
# outside any one clone, and put on the virtual environment's path with a .pth file
TORCH_VERSION := 2.9.1
AUDIO_DIR   := $(HOME)/.cache/driftloop/torch-$(TORCH_VERSION)
AUDIO_STAMP := $(VENV)/.installed-audio

.PHONY: help deps install up down status test demo bench lint schemas clean

help: ## show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

deps: ## install the Debian packages driftloop needs (redis-server, kcat, Java, Maven, espeak-ng, sox, chromium)
	@missing=""; for pair in $(DEBIAN_NEEDS); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing driftloop and its test tools into $(VENV) (first time: about a minute)"
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

$(AUDIO_STAMP): $(STAMP)
	@if [ ! -f "$(AUDIO_DIR)/.complete" ]; then \
	  echo "installing torch $(TORCH_VERSION) + torchaudio into $(AUDIO_DIR), once per machine (several GB)"; \
	  rm -rf "$(AUDIO_DIR).partial"; \
	  $(BIN)/python -m pip install -q --target "$(AUDIO_DIR).partial" \
	    torch==$(TORCH_VERSION) torchaudio==$(TORCH_VERSION) && \
	  rm -rf "$(AUDIO_DIR)" && mv "$(AUDIO_DIR).partial" "$(AUDIO_DIR)" && touch "$(AUDIO_DIR)/.complete"; \
	fi
	@$(BIN)/python -m pip install -q 'soundfile>=0.12'
	@echo "$(AUDIO_DIR)" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/driftloop-audio.pth"
	@$(BIN)/python -c "import torch, torchaudio, soundfile" || { echo "torch/torchaudio do not import from $(AUDIO_DIR): remove it and run make again"; exit 1; }
	@touch $@

install: deps $(STAMP) $(AUDIO_STAMP) ## create the virtual environment and install driftloop (with the audio extra)

up: install ## start Kafka and Redis on 127.0.0.1 (harmless when already running)
	@$(DL) infra up

down: ## stop Kafka and Redis
	@if [ -x $(DL) ]; then $(DL) infra down; else echo "nothing to stop (no $(VENV))"; fi

status: install ## report whether Kafka and Redis are running
	@$(DL) infra status

test: install ## run the whole test suite against a real Kafka and Redis
	@started=$$(mktemp); \
	$(DL) infra up --started-file "$$started" || { $(DL) infra down --started-file "$$started"; rm -f "$$started"; exit 1; }; \
	rc=0; $(BIN)/pytest $(PYTEST_ARGS) || rc=$$?; \
	$(DL) infra down --started-file "$$started"; rm -f "$$started"; exit $$rc

demo: install ## run the end-to-end job (KEEP=1 leaves the services running)
	@started=$$(mktemp); \
	$(DL) infra up --started-file "$$started" || { $(DL) infra down --started-file "$$started"; rm -f "$$started"; exit 1; }; \
	rc=0; $(DL) demo --story loop $(if $(KEEP),--keep) || rc=$$?; \
	if [ -z "$(KEEP)" ]; then $(DL) infra down --started-file "$$started"; \
	else echo "KEEP=1: services left running; stop them with 'make down'"; fi; \
	rm -f "$$started"; exit $$rc

bench: install ## run the benchmarks in bench/ against a real broker and print the figures
	@started=$$(mktemp); \
	$(DL) infra up --started-file "$$started" || { $(DL) infra down --started-file "$$started"; rm -f "$$started"; exit 1; }; \
	rc=0; for b in bench/*.py; do echo "== $$b"; $(BIN)/python "$$b" || rc=$$?; done; \
	$(DL) infra down --started-file "$$started"; rm -f "$$started"; exit $$rc

lint: install ## ruff
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

schemas: install ## regenerate docs/schemas/*.json and docs/asyncapi.yaml from the code
	@$(DL) schemas export

clean: down ## stop services and remove local state (not the Kafka jar cache)
	rm -rf .driftloop .pytest_cache .ruff_cache
