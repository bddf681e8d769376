# Two commands for a fresh Debian 12 machine, as root:
#   make demo   bring up the real Asterisk lab and drive three minutes of hotline traffic
#   make test   lint, type-check and run the whole test suite against the real lab
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages: mmdebstrap builds the lab's Asterisk 22 chroot, sip-tester is SIPp, prometheus
# gives the real Prometheus and promtool, mosquitto the MQTT broker, chromium the browser for the web tests,
# espeak-ng and sox build the spoken prompts (acdbridge/prompts.py); systemd gives systemd-analyze,
# systemd-sysusers and systemd-tmpfiles for the unit's tests (Debian's container images lack it) and
# python3-venv the venv `make install` builds with Debian's python3; postgresql the server the store
# tests run as their own throw-away cluster (tests/pg.py; the system's cluster is never touched);
# fonts-wqy-microhei the Chinese glyphs the pages' zh translation needs in Chromium's screenshots
DEBS := mmdebstrap sip-tester prometheus mosquitto chromium openssl espeak-ng sox systemd python3-venv postgresql \
	fonts-wqy-microhei
DEMO_SCENARIO ?= demo

.PHONY: deps demo demo-stop demo-stop-daemon test lint clean install uninstall

deps: $(BIN)/.installed
	@if ! command -v mmdebstrap >/dev/null || ! command -v sipp >/dev/null || ! command -v promtool >/dev/null \
		|| ! command -v mosquitto >/dev/null || ! command -v chromium >/dev/null || ! command -v openssl >/dev/null \
		|| ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null \
		|| ! command -v systemd-analyze >/dev/null || ! $(INSTALL_PYTHON) -c 'import ensurepip' 2>/dev/null \
		|| ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| ! [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]; then \
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
	mkdir -p demo && rm -rf demo/acdbridge.sqlite* demo/journal  # a fresh demo: no state to recover
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
	$(BIN)/acdbridge export --config examples/acdbridge-lab.toml --from 0 --to 2100-01-01 --format csv --output demo/visits.csv
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

# ---- The daemon on a real PBX host (docs/install.md). `make install` as root: a venv at $(PREFIX)
# made with Debian's python3 (not a python under /root or /home: the unit's ProtectHome= hides
# those), the unit, sysusers.d and tmpfiles.d files, and /etc/acdbridge/acdbridge.toml unless one
# exists. DESTDIR=/some/root stages the same tree for packaging or a test: the venv is built in
# $(DESTDIR)$(PREFIX), then the only places a venv names its own path (the scripts' #! lines, the
# activate scripts, pyvenv.cfg's note) are rewritten to $(PREFIX): the tree works once copied to /
# (or bind-mounted there, as tests/test_systemd_unit.py does), and from DESTDIR via its bin/python.
# Byte code is compiled at install (the service cannot write /opt); Python takes a module's file
# name from where it finds it, not from the .pyc.
# pip builds from a copy of the sources, so the clone gets no build/ or egg-info from it.
# PIP_INSTALL_ARGS is passed to pip (e.g. --no-index --find-links=DIR for an offline install).
PREFIX ?= /opt/acdbridge
DESTDIR ?=
INSTALL_PYTHON ?= /usr/bin/python3
PIP_INSTALL_ARGS ?=
UNITDIR ?= /etc/systemd/system
SYSUSERSDIR ?= /etc/sysusers.d
TMPFILESDIR ?= /etc/tmpfiles.d
STAGED_VENV := $(DESTDIR)$(PREFIX)

install:
	@$(INSTALL_PYTHON) -c 'import ensurepip' 2>/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	@set -e; umask 022; \
	case "$(PREFIX)" in /?*) ;; *) echo "PREFIX must be an absolute path, not '$(PREFIX)'" >&2; exit 2;; esac; \
	echo "== venv $(STAGED_VENV) ($(INSTALL_PYTHON), $$($(INSTALL_PYTHON) --version))"; \
	$(INSTALL_PYTHON) -m venv $(STAGED_VENV); \
	src=$$(mktemp -d); trap 'rm -rf "$$src"' EXIT; cp -R pyproject.toml README.md acdbridge "$$src"/; \
	$(STAGED_VENV)/bin/python -m pip install -q --disable-pip-version-check $(PIP_INSTALL_ARGS) "$$src"; \
	if [ -n "$(DESTDIR)" ]; then \
		grep -rlIZ -F '$(STAGED_VENV)' $(STAGED_VENV)/bin $(STAGED_VENV)/pyvenv.cfg \
			| xargs -0r sed -i 's|$(STAGED_VENV)|$(PREFIX)|g'; \
	fi; \
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
		$(STAGED_VENV)/share/doc/acdbridge; \
	sed 's|/opt/acdbridge|$(PREFIX)|g' systemd/acdbridge.service > $(DESTDIR)$(UNITDIR)/acdbridge.service; \
	chmod 0644 $(DESTDIR)$(UNITDIR)/acdbridge.service; \
	install -m 0644 systemd/acdbridge.sysusers $(DESTDIR)$(SYSUSERSDIR)/acdbridge.conf; \
	install -m 0644 systemd/acdbridge.tmpfiles $(DESTDIR)$(TMPFILESDIR)/acdbridge.conf; \
	install -m 0644 docs/install.md examples/acdbridge.toml $(STAGED_VENV)/share/doc/acdbridge/; \
	install -d -m 0750 $(DESTDIR)/etc/acdbridge; \
	if [ -e $(DESTDIR)/etc/acdbridge/acdbridge.toml ]; then \
		echo "== kept the existing $(DESTDIR)/etc/acdbridge/acdbridge.toml"; \
	else \
		install -m 0640 examples/acdbridge.toml $(DESTDIR)/etc/acdbridge/acdbridge.toml; \
		echo "== installed $(DESTDIR)/etc/acdbridge/acdbridge.toml (from examples/acdbridge.toml): edit it"; \
	fi; \
	echo "== installed $$($(STAGED_VENV)/bin/python $(STAGED_VENV)/bin/acdbridge version) in $(STAGED_VENV)"; \
	echo "Next steps (as root; docs/install.md):"; \
	echo "  systemd-sysusers acdbridge.conf          # the acdbridge user and group"; \
	echo "  systemd-tmpfiles --create acdbridge.conf # /etc/acdbridge root:acdbridge 0750, the config 0640, /var/lib/acdbridge 0700"; \
	echo "  (umask 077; read -rsp 'AMI secret: ' s && printf %s \"\$$s\" > /etc/acdbridge/ami-secret)  # manager.conf's, root 0600"; \
	echo "  CREDENTIALS_DIRECTORY=/etc/acdbridge $(PREFIX)/bin/acdbridge check-config --config /etc/acdbridge/acdbridge.toml"; \
	echo "  systemctl daemon-reload && systemctl enable --now acdbridge"; \
	echo "  systemctl status acdbridge; journalctl -u acdbridge -f"

# Removes the venv and the unit, sysusers.d and tmpfiles.d files; keeps /etc/acdbridge (config,
# secret), /var/lib/acdbridge (the store) and the acdbridge user.
uninstall:
	@set -e; \
	if [ ! -f $(STAGED_VENV)/pyvenv.cfg ]; then echo "no venv at $(STAGED_VENV): nothing to remove there"; \
	else rm -rf $(STAGED_VENV); echo "removed $(STAGED_VENV)"; fi; \
	rm -f $(DESTDIR)$(UNITDIR)/acdbridge.service $(DESTDIR)$(SYSUSERSDIR)/acdbridge.conf \
		$(DESTDIR)$(TMPFILESDIR)/acdbridge.conf; \
	echo "kept /etc/acdbridge, /var/lib/acdbridge and the acdbridge user; if the unit was running:"; \
	echo "  systemctl disable --now acdbridge; systemctl daemon-reload"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis demo
