"""The Grafana dashboards in grafana/dashboards: JSON models Grafana 10/11 can load, wired to the provisioned
data source, and querying only series acdbridge exports (what `acdbridge replay --metrics` prints for a
real trace) or that Prometheus adds itself.

PromQL itself cannot be checked here (promtool has no "check expression"): the lab test
tests/integration/test_grafana_queries.py runs every panel query against a real Prometheus.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DASHBOARD_DIR = REPO / "grafana" / "dashboards"
PROVISIONING = REPO / "grafana" / "provisioning"
DASHBOARDS = ("wallboard", "supervisor", "ops")
DATASOURCE_UID = "acdbridge-prometheus"
TRACE = REPO / "tests" / "fixtures" / "traces" / "mixed.ami.gz"

# Series a replay cannot show, and why a dashboard may still use each.
ALLOWED_EXTRA = {
    "acd_ami_connected": "daemon health (docs/metrics.md): only `acdbridge run` has an AMI link",
    "acd_ami_events_total": "daemon health (docs/metrics.md)",
    "acd_ami_reconnects_total": "daemon health (docs/metrics.md)",
    "acd_store_write_errors_total": "daemon health (docs/metrics.md)",
    "acd_queue_drops_total": "daemon health (docs/metrics.md)",
    "acd_queue_satisfaction_ratio": "caller's path (docs/callflow.md): the mixed trace has no survey",
    "acd_queue_first_call_resolution_ratio": "caller's path: the trace has no dispositions",
    "acd_ivr_calls_total": "caller's path (docs/callflow.md): the mixed trace has no greeting",
    "up": "Prometheus' own scrape health for job acdbridge",
    "scrape_duration_seconds": "Prometheus' own per-scrape series",
    "scrape_samples_scraped": "Prometheus' own per-scrape series",
    "ALERTS": "Prometheus' alert state for grafana/alerts/acdbridge.rules.yml",
}
# What Grafana substitutes in a query, and the value the tests use in its place.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s"}
QUEUE_VARIABLE = "$queue"
# The series each dashboard is for (the brief of each board).
REQUIRED = {
    "wallboard": {
        "acd_queue_calls_waiting", "acd_queue_longest_wait_seconds", "acd_queue_asa_seconds",
        "acd_queue_service_level_ratio", "acd_queue_sl_target_ratio", "acd_queue_abandon_ratio", "acd_agents",
    },
    "supervisor": {
        "acd_queue_calls_total", "acd_queue_asa_seconds", "acd_queue_service_level_ratio", "acd_agent_state",
        "acd_agent_occupancy_ratio", "acd_ring_attempts_total", "acd_agents",
    },
    "ops": {
        "acd_ami_connected", "acd_ami_events_total", "acd_ami_reconnects_total",
        "acd_store_write_errors_total", "acd_queue_drops_total", "up", "ALERTS",
    },
}  # fmt: skip


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # the dashboard's uid
    panel: str  # the panel's title
    ref_id: str
    expr: str


def load(name: str) -> dict[str, Any]:
    model: dict[str, Any] = json.loads((DASHBOARD_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return model


def all_panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in model["panels"]:
        yield panel
        yield from panel.get("panels", [])


def panel_queries(model: dict[str, Any]) -> list[PanelQuery]:
    return [
        PanelQuery(model["uid"], panel["title"], target["refId"], target["expr"])
        for panel in all_panels(model)
        for target in panel.get("targets", [])
    ]


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


_LABEL_VALUES = re.compile(r"^label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)$")


def variable_as_promql(query: str) -> str:
    """A Grafana `label_values(series, label)` variable as the PromQL query that answers the same."""
    found = _LABEL_VALUES.match(query)
    assert found, f"not a label_values() query: {query}"
    return f"group by ({found.group(2)}) ({found.group(1)})"


def substitute(expr: str, queue: str = ".*") -> str:
    """What Grafana would send: `queue` is a queue name (a repeated panel) or a regex (the All value)."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr.replace(QUEUE_VARIABLE, queue)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+-?[\w.]+")
_NUMBER = re.compile(r"(?<![\w:.])(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (a scanner, not a parser: enough for dashboards)."""
    text = _STRING.sub(" ", expr)
    for pattern in (_MATCHERS, _RANGE, _LABEL_LIST, _OFFSET, _NUMBER):
        text = pattern.sub(" ", text)
    names = set()
    for found in _IDENTIFIER.finditer(text):
        name = found.group()
        if name.lower() in _KEYWORDS or re.match(r"\s*\(", text[found.end() :]):
            continue  # a keyword, or a function / aggregation call
        names.add(name)
    return names


def exposition_names(text: str) -> set[str]:
    return {line.split("{", 1)[0].split(" ", 1)[0] for line in text.splitlines() if line and line[0] != "#"}


@functools.cache
def replay_exposition() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "acdbridge", "replay", str(TRACE), "--metrics"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _uses(name: str) -> set[str]:
    model = load(name)
    used = {n for q in panel_queries(model) for n in metric_names(q.expr)}
    for variable in model["templating"]["list"]:
        if variable["type"] == "query":
            used |= metric_names(variable_as_promql(variable_query(variable)))
    return used


# ------------------------------------------------------------------------------------------------- tests


def test_the_metric_name_scanner() -> None:
    assert metric_names(
        'sum by (outcome) (increase(acd_queue_calls_total{queue=~"$queue"}[$__rate_interval]))'
    ) == {"acd_queue_calls_total"}
    assert metric_names(
        'acd_queue_service_level_ratio{window="15m"} < ignoring (window) group_left acd_queue_sl_target_ratio'
    ) == {"acd_queue_service_level_ratio", "acd_queue_sl_target_ratio"}
    assert metric_names('count(ALERTS{alertname=~"Acd.*"}) or vector(0) > 1e3') == {"ALERTS"}
    assert metric_names("max by (agent, state) (acd_agent_state == 1) offset 5m") == {"acd_agent_state"}
    assert metric_names('up{job="a{b}"} unless on (job) x:recorded:rate5m') == {"up", "x:recorded:rate5m"}


def test_the_exported_names_come_from_a_real_replay() -> None:
    names = exposition_names(replay_exposition())
    assert {"acd_queue_calls_total", "acd_queue_wait_seconds_bucket", "acd_agent_state"} <= names
    assert not names & set(ALLOWED_EXTRA), "replay now exports an allowed extra: drop it from ALLOWED_EXTRA"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_the_dashboard_is_a_grafana_model(name: str) -> None:
    model = load(name)
    assert model["uid"] == f"acdbridge-{name}" and len(model["uid"]) <= 40
    assert model["title"].startswith("acdbridge ")
    assert 36 <= model["schemaVersion"] <= 41  # Grafana 10 and 11
    assert isinstance(model["version"], int) and "acdbridge" in model["tags"]
    assert model["time"]["from"].startswith("now-") and model["time"]["to"] == "now"
    assert isinstance(model["templating"]["list"], list) and model["panels"]
    assert "id" not in model or model["id"] is None  # provisioning assigns the database id


def test_uids_and_titles_are_unique() -> None:
    models = [load(name) for name in DASHBOARDS]
    assert len({m["uid"] for m in models}) == len({m["title"] for m in models}) == len(DASHBOARDS)
    assert sorted(p.stem for p in DASHBOARD_DIR.glob("*.json")) == sorted(DASHBOARDS)


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_panel_has_an_id_a_place_and_prometheus_targets(name: str) -> None:
    panels = list(all_panels(load(name)))
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) and i > 0 for i in ids) and len(set(ids)) == len(ids), ids
    boxes: list[tuple[int, int, int, int, str]] = []
    for panel in panels:
        where = f"{name}: panel {panel['id']} {panel.get('title')!r}"
        assert panel["type"] and panel["title"], where
        pos = panel["gridPos"]
        assert all(isinstance(pos[k], int) for k in ("h", "w", "x", "y")), where
        assert (
            pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0 and pos["x"] + pos["w"] <= 24
        ), where
        for x, y, w, h, other in boxes:
            overlap = (
                pos["x"] < x + w and x < pos["x"] + pos["w"] and pos["y"] < y + h and y < pos["y"] + pos["h"]
            )
            assert not overlap, f"{where} overlaps {other}"
        boxes.append((pos["x"], pos["y"], pos["w"], pos["h"], where))
        if panel["type"] == "row":
            assert "targets" not in panel, where
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, where
        targets = panel["targets"]
        assert targets, f"{where} has no targets"
        ref_ids = [t["refId"] for t in targets]
        assert len(set(ref_ids)) == len(ref_ids) and all(re.fullmatch(r"[A-Z]", r) for r in ref_ids), where
        for target in targets:
            assert target["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, where
            assert isinstance(target["expr"], str) and target["expr"].strip(), where
            assert target["expr"].count("(") == target["expr"].count(")"), where
            assert target["expr"].count("{") == target["expr"].count("}"), where
        assert "fieldConfig" in panel and "options" in panel, where


@pytest.mark.parametrize("name", DASHBOARDS)
def test_queries_use_only_variables_grafana_substitutes(name: str) -> None:
    model = load(name)
    defined = {f"${v['name']}" for v in model["templating"]["list"]}
    for query in panel_queries(model):
        found = set(re.findall(r"\$\w+", query.expr))
        assert found <= set(GRAFANA_VARIABLES) | defined, (query, found)
        # a multi-value or All selection arrives as a regex: only a =~ matcher may hold it
        assert query.expr.count(QUEUE_VARIABLE) == query.expr.count(f'queue=~"{QUEUE_VARIABLE}"'), query
        assert "$" not in substitute(query.expr, "water"), query
    for variable in model["templating"]["list"]:
        assert variable["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
        assert variable_query(variable) == "label_values(acd_queue_calls_waiting, queue)"
        assert variable["definition"] == variable_query(variable) and variable["includeAll"]


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_series_used_is_exported(name: str) -> None:
    exported = exposition_names(replay_exposition())
    unknown = _uses(name) - exported - set(ALLOWED_EXTRA)
    assert not unknown, f"{name} queries series acdbridge does not export: {sorted(unknown)}"


def test_every_allowed_extra_is_used_and_the_health_series_are_documented() -> None:
    used = set().union(*(_uses(name) for name in DASHBOARDS))
    assert set(ALLOWED_EXTRA) <= used, f"stale allowances: {sorted(set(ALLOWED_EXTRA) - used)}"
    contract = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    for series in ALLOWED_EXTRA:
        if series.startswith("acd_"):
            assert f"`{series}" in contract, f"{series} is not in docs/metrics.md"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_the_dashboard_shows_what_it_is_for(name: str) -> None:
    missing = REQUIRED[name] - _uses(name)
    assert not missing, f"{name} lacks {sorted(missing)}"


def test_the_wallboard_is_one_row_per_queue_of_big_coloured_stats() -> None:
    model = load("wallboard")
    rows = [p for p in model["panels"] if p["type"] == "row"]
    assert [r.get("repeat") for r in rows] == ["queue"] and "$queue" in rows[0]["title"]
    variable = model["templating"]["list"][0]
    assert variable["name"] == "queue" and variable["multi"] and variable["includeAll"]
    stats = [p for p in model["panels"] if p["type"] != "row"]
    assert stats and all(p["type"] == "stat" for p in stats)
    for panel in stats:
        assert panel["options"]["colorMode"] == "background" and panel["options"]["graphMode"] == "none"
        assert panel["options"]["text"]["valueSize"] >= 64, panel["title"]
        assert panel["fieldConfig"]["defaults"]["thresholds"]["steps"][0]["value"] is None, panel["title"]
        assert all(t["instant"] for t in panel["targets"]), panel["title"]
    exprs = " ".join(q.expr for q in panel_queries(model))
    assert 'window="today"' in exprs and 'window="15m"' in exprs
    assert "acd_queue_sl_target_ratio" in exprs  # service level judged against each queue's own target
    assert model["refresh"] and model.get("style") == "dark"


def _yaml_pairs(path: Path) -> dict[str, str]:
    """key -> value of the scalar lines of a small YAML file (no YAML library in the project)."""
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        found = re.match(r"^\s*(?:-\s+)?([A-Za-z]\w*):\s*(\S.*?)\s*$", line)
        if found and not line.lstrip().startswith("#"):
            pairs[found.group(1)] = found.group(2)
    return pairs


def test_the_provisioning_files() -> None:
    source = _yaml_pairs(PROVISIONING / "datasources" / "acdbridge.yml")
    assert source["apiVersion"] == "1" and source["type"] == "prometheus"
    assert source["uid"] == DATASOURCE_UID and source["url"] == "http://127.0.0.1:9090"
    assert source["isDefault"] == "true" and source["access"] == "proxy"
    provider = _yaml_pairs(PROVISIONING / "dashboards" / "acdbridge.yml")
    assert provider["apiVersion"] == "1" and provider["type"] == "file"
    assert provider["path"] == "/var/lib/grafana/dashboards/acdbridge"
    assert "grafana/dashboards/*.json" in (PROVISIONING / "dashboards" / "acdbridge.yml").read_text()
