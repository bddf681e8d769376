"""The durable parts, without a PBX: store idempotency, tracker state across a restart,
config errors and the export command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acdbridge.adapters.store import SqliteStore
from acdbridge.cli import main
from acdbridge.config import ConfigError, load, parse
from acdbridge.core.ami import AmiMessage, FrameParser
from acdbridge.core.pipeline import Pipeline, Record
from acdbridge.replay import dumps, read_chunks, replay_records

TRACES = Path(__file__).parent / "fixtures" / "traces"


def messages(trace: Path) -> list[AmiMessage]:
    parser = FrameParser()
    return [m for chunk in read_chunks(trace) for m in parser.feed(chunk)]


@pytest.mark.parametrize("cut", [0.25, 0.5, 0.75])
def test_a_restart_mid_trace_gives_the_same_records(cut: float) -> None:
    msgs = messages(TRACES / "mixed.ami.gz")
    whole = replay_records(TRACES / "mixed.ami.gz")
    out: list[Record] = []
    first = Pipeline(on_visit=out.append)
    split = int(len(msgs) * cut)
    for m in msgs[:split]:
        first.feed(m)
    saved = json.loads(json.dumps(first.snapshot()))  # through the store's JSON, as the daemon does
    second = Pipeline(on_visit=out.append)
    second.restore(saved)
    for m in msgs[split:]:
        second.feed(m)
    second.finish()
    assert sorted(map(dumps, out)) == sorted(map(dumps, whole))


def test_store_writes_each_visit_once(tmp_path: Path) -> None:
    visits = replay_records(TRACES / "mixed.ami.gz")
    store = SqliteStore(tmp_path / "s.sqlite")
    assert store.write(visits, []) == len(visits)
    assert store.write(visits, []) == 0  # a replayed or re-sent batch changes nothing
    assert store.count("visits") == len(visits)
    got = store.visits(0, 1e12)
    assert sorted(map(dumps, got)) == sorted(map(dumps, visits))
    water = store.visits(0, 1e12, queue="water")
    assert water and all(v["queue"] == "water" for v in water)
    assert store.load_state() is None
    store.save_state(123.0, {"x": 1})
    assert store.load_state() == (123.0, {"x": 1})
    assert store.load_state() is None  # used once
    store.close()
    assert (tmp_path / "s.sqlite-wal").exists() or (tmp_path / "s.sqlite").exists()


def test_export_prints_jsonl_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    visits = replay_records(TRACES / "edge.ami")
    store = SqliteStore(tmp_path / "s.sqlite")
    store.write(visits, [])
    store.close()
    assert main(["export", "--db", str(tmp_path / "s.sqlite"), "--from", "0", "--to", "2099-01-01"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(visits)
    assert main(["export", "--db", str(tmp_path / "s.sqlite"), "--from", "0", "--to", "2099-01-01T00:00",
                 "--queue", "broadband", "--format", "csv"]) == 0  # fmt: skip
    rows = capsys.readouterr().out.splitlines()
    assert (
        rows[0].startswith("uniqueid,linkedid,queue") and len(rows) == 2 and ",blocked,joinempty," in rows[1]
    )


def test_export_refuses_bad_times_and_missing_stores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--db", "x", "--from", "yesterday", "--to", "0"])
    assert "not a time" in capsys.readouterr().err
    assert main(["export", "--db", str(tmp_path / "none.sqlite"), "--from", "0", "--to", "1"]) == 2
    assert "no store at" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[ami]\nport = 99999\n", "ami.port: out of range"),
        ('[ami]\nport = "x"\n', "ami.port: expected int"),
        ("[ami]\nping_interval_s = 0\n", "ami.ping_interval_s: must be a positive number"),
        ("[ami]\ncolour = 1\n", "unknown keys ['colour']"),
        ("[nope]\n", "unknown sections ['nope']"),
        ("[queues.water]\nwrapup_s = -1\n", "queues.water.wrapup_s: expected seconds >= 0"),
        ("[ami\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "acd.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(path)


def test_config_defaults_and_values() -> None:
    ami = {"port": 5038, "capture": "/tmp/x.ami", "secret": "s3cret"}
    cfg = parse({"ami": ami, "queues": {"water": {"wrapup_s": 30}}})
    assert cfg.ami.port == 5038 and cfg.ami.capture == Path("/tmp/x.ami") and cfg.wrapup_s == {"water": 30.0}
    assert cfg.ami.ping_interval_s > 0 and cfg.ami.reconnect_max_s >= cfg.ami.reconnect_min_s


def test_kpi_config_with_outside_inputs(tmp_path: Path) -> None:
    path = tmp_path / "acd.toml"
    path.write_text(
        '[ami]\nsecret = "s3cret"\n'
        '[kpi]\ntimezone = "Asia/Shanghai"\nwindows_min = [5, 30]\ncost_per_hour = 600\n'
        "[queues.water]\nsl_threshold_s = 30\nsl_target = 0.9\n"
        '[agents."Ana Torres"]\nqa_score = 88\n'
        'schedule = [["2026-11-23T08:00:00+08:00", "2026-11-23T16:00:00+08:00"]]\n'
    )
    kpi = load(path).kpi
    assert kpi.windows_s == (300.0, 1800.0) and kpi.cost_per_hour == 600.0 and kpi.timezone == "Asia/Shanghai"
    assert kpi.queue("water").sl_threshold_s == 30.0 and kpi.queue("water").sl_target == 0.9
    assert kpi.qa_scores == {"Ana Torres": 88.0}
    assert kpi.schedules == {"Ana Torres": [(1795392000.0, 1795392000.0 + 8 * 3600)]}  # 00:00Z-08:00Z


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[kpi]\ntimezone = "Mars/Olympus"\n', "unknown timezone"),
        ("[kpi]\ninterval_min = 7\n", "interval_s must divide a day"),
        ("[queues.water]\nsl_target = 1.5\n", "queues.water: sl_target must be a ratio"),
        ('[agents.Ana]\nschedule = [["2026-11-23T16:00", "2026-11-23T08:00"]]\n', "is not after"),
        ('[agents.Ana]\nschedule = [["soon", "later"]]\n', "agents.Ana.schedule"),
    ],
)
def test_kpi_config_errors_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "acd.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load(path)
