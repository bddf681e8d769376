# Two commands for a fresh Debian 12 machine, as root:
#   make demo   bring up the real Asterisk lab and drive three minutes of hotline traffic
#   make test   lint, type-check and run the whole test suite against the real lab
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages: mmdebstrap builds the lab's Asterisk 22 chroot, sip-tester is SIPp, prometheus
# gives the real Prometheus and promtool, mosquitto the MQTT broker, chromium the browser for the web tests
DEBS := mmdebstrap sip-tester prometheus mosquitto chromium openssl
DEMO_SCENARIO ?= demo

.PHONY: deps demo test lint clean

deps: $(BIN)/.installed
	@if ! command -v mmdebstrap >/dev/null || ! command -v sipp >/dev/null || ! command -v promtool >/dev/null \
		|| ! command -v mosquitto >/dev/null || ! command -v chromium >/dev/null || ! command -v openssl >/dev/null; then \
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

# The daemon records the demo's calls; its store is then exported as CSV (demo/visits.csv).
demo: deps
	$(BIN)/acdbridge lab up
	mkdir -p demo && rm -f demo/acdbridge.sqlite* demo/ami-capture.raw
	$(BIN)/acdbridge run --config examples/acdbridge-lab.toml 2> demo/daemon.log & echo $$! > demo/daemon.pid
	sleep 2
	$(BIN)/acdbridge lab traffic --scenario $(DEMO_SCENARIO); status=$$?; \
		sleep 11; $(BIN)/python -c 'import urllib.request as u; print(u.urlopen("http://127.0.0.1:29108/metrics").read().decode())' \
		| grep -E '^acd_queue_(service_level_ratio|asa_seconds|abandon_ratio|window_offered_calls)\{.*window="15m"'; \
		kill -TERM $$(cat demo/daemon.pid); sleep 2; exit $$status
	$(BIN)/acdbridge export --config examples/acdbridge-lab.toml --from 0 --to 2100-01-01 --format csv > demo/visits.csv
	@echo "acdbridge stored $$(($$(wc -l < demo/visits.csv) - 1)) queue visits: demo/visits.csv (log: demo/daemon.log)"
	@echo "The lab is still running. Try: $(BIN)/acdbridge lab status | lab cli 'queue show' | lab down"

lint: deps
	$(BIN)/ruff check acdbridge tests benchmarks
	$(BIN)/ruff format --check acdbridge tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis demo
