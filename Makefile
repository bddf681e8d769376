# Two commands for a fresh Debian 12 machine, as root:
#   make demo   bring up the real Asterisk lab and drive three minutes of hotline traffic
#   make test   lint, type-check and run the whole test suite against the real lab
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages: mmdebstrap builds the lab's Asterisk 22 chroot, sip-tester is SIPp, prometheus
# gives the real Prometheus and promtool, mosquitto the MQTT broker, chromium the browser for the web tests,
# espeak-ng and sox build the spoken prompts (acdbridge/prompts.py)
DEBS := mmdebstrap sip-tester prometheus mosquitto chromium openssl espeak-ng sox
DEMO_SCENARIO ?= demo

.PHONY: deps demo demo-stop demo-stop-daemon test lint clean

deps: $(BIN)/.installed
	@if ! command -v mmdebstrap >/dev/null || ! command -v sipp >/dev/null || ! command -v promtool >/dev/null \
		|| ! command -v mosquitto >/dev/null || ! command -v chromium >/dev/null || ! command -v openssl >/dev/null \
		|| ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null; then \
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

# The product on the lab: Asterisk, mosquitto, the daemon, three minutes of traffic. The daemon
# and mosquitto keep running afterwards (the wallboard stays live); `make demo-stop` ends it all.
demo: deps demo-stop-daemon
	$(BIN)/acdbridge lab up
	$(BIN)/acdbridge prompts build --config examples/acdbridge-lab.toml
	mkdir -p demo && rm -f demo/acdbridge.sqlite* demo/ami-capture.raw
	printf 'listener 21883 127.0.0.1\nallow_anonymous true\nuser root\n' > demo/mosquitto.conf
	mosquitto -d -c demo/mosquitto.conf
	$(BIN)/acdbridge run --config examples/acdbridge-lab.toml > demo/daemon.log 2>&1 < /dev/null & echo $$! > demo/daemon.pid
	sleep 2
	@echo "== wallboard: http://127.0.0.1:29108/   metrics: http://127.0.0.1:29108/metrics"
	@echo "== MQTT on 127.0.0.1:21883: acdbridge/status, acdbridge/queue/<queue>, acdbridge/queue/<queue>/led, acdbridge/agent/<agent>/state"
	$(BIN)/acdbridge lab traffic --scenario $(DEMO_SCENARIO)
	sleep 11
	@$(BIN)/python -c 'import urllib.request as u; print(u.urlopen("http://127.0.0.1:29108/metrics").read().decode())' \
		| grep -E '^acd_queue_(service_level_ratio|asa_seconds|abandon_ratio|window_offered_calls)\{.*window="15m"|^acd_ivr_calls_total'
	$(BIN)/acdbridge export --config examples/acdbridge-lab.toml --from 0 --to 2100-01-01 --format csv > demo/visits.csv
	@echo "acdbridge stored $$(($$(wc -l < demo/visits.csv) - 1)) queue visits: demo/visits.csv (log: demo/daemon.log)"
	@echo "Still running: the lab, mosquitto and the daemon (wallboard above). Stop them all with: make demo-stop"

demo-stop-daemon:
	@if [ -f demo/daemon.pid ]; then kill -TERM $$(cat demo/daemon.pid) 2>/dev/null || true; rm -f demo/daemon.pid; sleep 1; fi
	@pkill -f '[m]osquitto -d -c demo/mosquitto.conf' || true  # [m]: never match this shell itself

demo-stop: demo-stop-daemon
	@if [ -x $(BIN)/acdbridge ]; then $(BIN)/acdbridge lab down; fi

lint: deps
	$(BIN)/ruff check acdbridge tests benchmarks
	$(BIN)/ruff format --check acdbridge tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis demo
