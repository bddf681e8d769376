# Two commands for a fresh Debian 12 machine, as root:
#   make demo   bring up the real Asterisk lab and drive three minutes of hotline traffic
#   make test   lint, type-check and run the whole test suite against the real lab
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the lab needs: mmdebstrap builds the Asterisk 22 chroot, sip-tester is SIPp
DEBS := mmdebstrap sip-tester

.PHONY: deps demo test lint clean

deps: $(BIN)/.installed
	@if ! command -v mmdebstrap >/dev/null || ! command -v sipp >/dev/null; then \
		echo "installing Debian packages: $(DEBS)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBS); \
	fi

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

demo: deps
	$(BIN)/acdbridge lab up
	$(BIN)/acdbridge lab traffic --scenario demo
	$(BIN)/acdbridge lab cli 'queue show'
	@echo "The lab is still running. Try: $(BIN)/acdbridge lab status | lab cli 'queue show' | lab down"

lint: deps
	$(BIN)/ruff check acdbridge tests
	$(BIN)/ruff format --check acdbridge tests
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
