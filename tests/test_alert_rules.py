"""The Prometheus alert rules in grafana/alerts: valid, unit-tested by promtool, every alert tested both ways.

promtool comes with Debian's ``prometheus`` package; without it these tests fail (they are never skipped).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RULES = Path("grafana/alerts/acdbridge.rules.yml")
RULE_TESTS = Path("grafana/alerts/acdbridge.rules.test.yml")
DAEMON_RULES = Path("grafana/alerts/daemon.rules.yml")  # the daemon's own health
DAEMON_RULE_TESTS = Path("grafana/alerts/daemon.rules.test.yml")
# every rule file with its promtool test file and the alerts it must define
RULE_FILES = {
    RULES: (RULE_TESTS, ("AcdAbandonmentSpike", "AcdServiceLevelLow", "AcdLongestWaitHigh",
                         "AcdCallersWaitingNoAgent", "AcdStaffingShort", "AcdOncallUnanswered", "AcdAmiDown",
                         "AcdDaemonDown")),
    DAEMON_RULES: (DAEMON_RULE_TESTS, ("AcdEventLoopLagHigh", "AcdInternalQueueDrops",
                                       "AcdTasksRestarting", "AcdStoreWriteErrors", "AcdStoreQuarantine",
                                       "AcdConfigReloadRejected")),
}  # fmt: skip
ALERTS = tuple(a for _, alerts in RULE_FILES.values() for a in alerts)

_RULE_START = re.compile(r"^\s*-\s+(alert|record):\s*(\S+)\s*$", re.MULTILINE)
_ALERTNAME = re.compile(r"^\s*(?:-\s+)?alertname:\s*(\S+)\s*$")
_EXP_ALERTS = re.compile(r"^(\s*)(?:-\s+)?exp_alerts:\s*(.*?)\s*$")


def _promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        pytest.fail(
            "promtool not found: install Debian's prometheus package "
            "(apt-get install prometheus; `make test` installs it)",
            pytrace=False,
        )
    return found


def _run_promtool(*args: str) -> None:
    command = [_promtool(), *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, (
        f"{' '.join(command)} exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )


@pytest.mark.parametrize("rules", list(RULE_FILES), ids=str)
def test_promtool_accepts_the_rule_file(rules: Path) -> None:
    _run_promtool("check", "rules", str(rules))


@pytest.mark.parametrize("rules", list(RULE_FILES), ids=str)
def test_the_rule_unit_tests_pass(rules: Path) -> None:
    _run_promtool("test", "rules", str(RULE_FILES[rules][0]))


@dataclass(frozen=True)
class RuleBlock:
    kind: str  # "alert" or "record"
    name: str
    text: str


def _rule_blocks(text: str) -> list[RuleBlock]:
    """Split a rule file at each "- alert:" / "- record:" line (a rule runs until the next one)."""
    starts = list(_RULE_START.finditer(text))
    ends = [m.start() for m in starts[1:]] + [len(text)]
    pairs = zip(starts, ends, strict=True)
    return [RuleBlock(m.group(1), m.group(2), text[m.start() : end]) for m, end in pairs]


def _expectations(text: str) -> dict[str, list[bool]]:
    """For each alertname in the unit tests, whether each of its exp_alerts lists has entries.

    Relies on the convention stated at the top of the test file: "alertname" comes before "exp_alerts"
    in each alert_rule_test entry, and an empty expectation is written "exp_alerts: []".
    """
    found: dict[str, list[bool]] = {}
    lines = text.splitlines()
    alertname: str | None = None
    for number, line in enumerate(lines):
        if line.lstrip().startswith("#"):
            continue
        if named := _ALERTNAME.match(line):
            alertname = named.group(1)
            continue
        exp = _EXP_ALERTS.match(line)
        if exp is None:
            continue
        assert alertname is not None, f"{RULE_TESTS}:{number + 1}: exp_alerts before any alertname"
        value = exp.group(2).split("#", 1)[0].strip()
        if value == "[]":
            found.setdefault(alertname, []).append(False)
        else:
            assert value == "", f"{RULE_TESTS}:{number + 1}: write exp_alerts as a block list or []"
            following = [s for s in lines[number + 1 :] if s.strip() and not s.lstrip().startswith("#")]
            has_entries = bool(following) and following[0].lstrip().startswith("- ")
            assert has_entries, f"{RULE_TESTS}:{number + 1}: exp_alerts for {alertname} has no entries"
            found.setdefault(alertname, []).append(True)
        alertname = None
    return found


@pytest.mark.parametrize("rules", list(RULE_FILES), ids=str)
def test_every_alert_is_defined_with_severity_and_annotations(rules: Path) -> None:
    alerts = [b for b in _rule_blocks((REPO / rules).read_text(encoding="utf-8")) if b.kind == "alert"]
    missing = set(RULE_FILES[rules][1]) - {b.name for b in alerts}
    assert not missing, f"alerts missing from {rules}: {sorted(missing)}"
    for block in alerts:
        for needed in ("severity:", "summary:", "description:", "{{ $"):
            assert needed in block.text, f"alert {block.name} in {rules} lacks {needed!r}"


@pytest.mark.parametrize(("alert", "tests"), [(a, t) for t, alerts in RULE_FILES.values() for a in alerts])
def test_every_alert_is_unit_tested_firing_and_not_firing(alert: str, tests: Path) -> None:
    expectations = _expectations((REPO / tests).read_text(encoding="utf-8")).get(alert, [])
    assert True in expectations, f"{tests}: no case where {alert} fires (exp_alerts with entries)"
    assert False in expectations, f"{tests}: no case where {alert} stays quiet (exp_alerts: [])"


def test_the_expectation_scanner_reads_both_kinds() -> None:
    sample = """
    alert_rule_test:
      - eval_time: 1m
        alertname: A
        exp_alerts: []
      - eval_time: 2m
        alertname: A
        exp_alerts:
          # comment
          - exp_labels:
              severity: warning
      - alertname: B
        eval_time: 2m
        exp_alerts: []
    """
    assert _expectations(sample) == {"A": [False, True], "B": [False]}
