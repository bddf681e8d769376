"""The recording indexer (runtime/recordings.py) on real WAV files and both store backends: a file
is indexed once when it has settled, with the WAV header's duration and the file's SHA-256; a
restarted indexer does not index it again; retention deletes the file and marks the row, and a
deleted file is never indexed again; a missing directory is logged once; `[recording]` errors."""

from __future__ import annotations

import hashlib
import os
import wave
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from acdbridge.config import validate
from acdbridge.runtime.recordings import ABANDONED_S, SETTLE_S, RecordingIndexer, describe, uniqueid_of
from acdbridge.settings.recordconf import RecordingConfig
from tests.stores import Factory

NOW = 1_800_000_000.0
DAY = 86400.0


def _wav(directory: Path, uid: str, seconds: float, mtime: float, rate: int = 8000) -> Path:
    path = directory / f"acdbridge-{uid}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * int(seconds * rate))
    os.utime(path, (mtime, mtime))
    return path


def test_only_the_dialplans_file_names_carry_a_uniqueid() -> None:
    assert uniqueid_of("acdbridge-1796398099.42.wav") == "1796398099.42"
    for other in ("acdbridge-.wav", "other-1.wav", "acdbridge-1.gsm", "acdbridge-1.wav.tmp"):
        assert uniqueid_of(other) is None


def test_a_settled_file_is_described_by_its_header_and_its_bytes(tmp_path: Path) -> None:
    path = _wav(tmp_path, "1.1", 6.5, NOW - SETTLE_S - 1)
    row = describe(path, NOW)
    assert row is not None and (row.uniqueid, row.file) == ("1.1", path.name)
    assert row.duration_s == 6.5 and row.bytes == path.stat().st_size
    assert row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (row.recorded_at, row.indexed_at, row.deleted_at) == (NOW - SETTLE_S - 1, NOW, None)
    assert describe(_wav(tmp_path, "1.2", 1.0, NOW - 1), NOW) is None  # still being written


def test_a_file_whose_header_is_unfinished_waits_for_the_hang_up(tmp_path: Path) -> None:
    """MixMonitor writes the header's sizes at close: until then the file is still recording,
    however long it sat untouched (the caller in the survey after the agent hung up)."""
    path = _wav(tmp_path, "1.3", 3.0, NOW - 600)
    raw = bytearray(path.read_bytes())
    raw[40:44] = (0).to_bytes(4, "little")  # the data chunk's size, as before MixMonitor's close
    path.write_bytes(bytes(raw))
    os.utime(path, (NOW - 600, NOW - 600))
    assert describe(path, NOW) is None
    abandoned = describe(path, NOW - 600 + ABANDONED_S)  # Asterisk died: what the file holds
    assert abandoned is not None and abandoned.duration_s == 3.0


def test_a_file_that_is_no_wav_is_indexed_with_no_duration(tmp_path: Path) -> None:
    path = tmp_path / "acdbridge-2.1.wav"
    path.write_bytes(b"not a wave file")
    os.utime(path, (NOW - 60, NOW - 60))
    with capture_logs() as logs:
        row = describe(path, NOW)
    assert row is not None and row.duration_s == 0.0 and row.bytes == 15
    assert [e["event"] for e in logs] == ["recording_unreadable"]


def test_files_are_indexed_once_across_scans_and_restarts(make_store: Factory, tmp_path: Path) -> None:
    store, clock = make_store(), [NOW]
    cfg = RecordingConfig(dir=tmp_path, scan_s=1.0)
    _wav(tmp_path, "3.1", 4.0, NOW - 60)
    fresh = _wav(tmp_path, "3.2", 2.0, NOW - 1)  # settles in the next scans
    (tmp_path / "unrelated.wav").write_bytes(b"x")
    indexer = RecordingIndexer(cfg, store, None, clock=lambda: clock[0])
    assert indexer.scan_once().indexed == 1
    assert indexer.scan_once().indexed == 0
    clock[0] = NOW + SETTLE_S
    assert indexer.scan_once().indexed == 1
    restarted = RecordingIndexer(cfg, store, None, clock=lambda: clock[0])
    assert restarted.scan_once().indexed == 0  # the store knows both files
    row = store.recording("3.2")
    assert row is not None and row.file == fresh.name and row.duration_s == 2.0
    assert store.recorded_files() == {"acdbridge-3.1.wav", "acdbridge-3.2.wav"}
    assert store.recording("3.9") is None
    # a second indexer racing the first (two scans of the same file) still stores one row
    assert store.put_recording(row) is False


def test_retention_deletes_old_files_once_and_never_indexes_them_again(
    make_store: Factory, tmp_path: Path
) -> None:
    store = make_store()
    cfg = RecordingConfig(dir=tmp_path, scan_s=1.0)
    old, recent = _wav(tmp_path, "4.1", 1.0, NOW - 8 * DAY), _wav(tmp_path, "4.2", 1.0, NOW - DAY)
    indexer = RecordingIndexer(cfg, store, 7 * DAY, clock=lambda: NOW)
    with capture_logs() as logs:
        report = indexer.scan_once()
    assert (report.indexed, report.deleted) == (2, 1)
    assert not old.exists() and recent.exists()
    gone = store.recording("4.1")
    assert gone is not None and gone.deleted_at == NOW
    assert [e["uniqueid"] for e in logs if e["event"] == "recording_deleted"] == ["4.1"]
    assert indexer.scan_once().deleted == 0
    _wav(tmp_path, "4.1", 1.0, NOW - 8 * DAY)  # the same name again (restored from a backup)
    restarted = RecordingIndexer(cfg, store, 7 * DAY, clock=lambda: NOW)
    assert restarted.scan_once().indexed == 0 and store.recording("4.1") == gone


def test_a_missing_directory_is_logged_once_and_scanning_goes_on(make_store: Factory, tmp_path: Path) -> None:
    indexer = RecordingIndexer(
        RecordingConfig(dir=tmp_path / "absent"), make_store(), None, clock=lambda: NOW
    )
    with capture_logs() as logs:
        assert indexer.scan_once().indexed == 0
        assert indexer.scan_once().indexed == 0
    assert [e["event"] for e in logs] == ["recording_dir_unreadable"]
    (tmp_path / "absent").mkdir()
    _wav(tmp_path / "absent", "5.1", 1.0, NOW - 60)
    assert indexer.scan_once().indexed == 1


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"scan_s": 0.1}, "recording.scan_s"),
        ({"dir": ""}, "recording.dir"),
        ({"folder": "/x"}, "folder"),
    ],
)
def test_a_bad_recording_table_names_its_key(table: dict[str, object], named: str) -> None:
    data = {"ami": {"host": "127.0.0.1", "username": "u", "secret": "s"}, "recording": table}
    cfg, problems = validate(data, "t.toml", {})
    assert len(problems.errors) == 1 and named in problems.errors[0], problems.errors
    assert cfg.recording == RecordingConfig()  # the defaults stand in for the wrong value


def test_the_recording_table_is_read() -> None:
    data = {"ami": {"host": "127.0.0.1", "username": "u", "secret": "s"},
            "recording": {"dir": "/srv/monitor", "scan_s": 30}}  # fmt: skip
    cfg, problems = validate(data, "t.toml", {})
    assert problems.errors == [] and cfg.recording == RecordingConfig(Path("/srv/monitor"), 30.0)


def test_purge_deletes_the_callers_recordings_indexed_or_not_and_names_what_it_cannot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from acdbridge.adapters.store import SqliteStore
    from acdbridge.cli import main
    from tests.test_privacy import visit

    monitor, db = tmp_path / "monitor", tmp_path / "s.sqlite"
    monitor.mkdir()
    store = SqliteStore(db)
    store.write([visit(1, NOW - DAY, "+4930111111"), visit(2, NOW - 60, "+4930111111"),
                 visit(3, NOW - DAY, "+4930222222")], [])  # fmt: skip
    files = {uid: _wav(monitor, uid, 2.0, NOW - DAY) for uid in ("u1", "u2", "u3")}
    for uid in ("u1", "u3"):  # u2's call ended a moment ago: not indexed yet
        row = describe(files[uid], NOW)
        assert row is not None and store.put_recording(row)
    store.close()
    config = tmp_path / "acd.toml"
    config.write_text(f'[store]\npath = "{db}"\n[recording]\ndir = "{monitor}"\n')

    assert main(["purge", "--caller", "+49 30 111111", "--dry-run", "--config", str(config)]) == 0
    assert "recordings: 2 files would be deleted" in capsys.readouterr().out
    assert all(p.exists() for p in files.values())
    assert main(["purge", "--caller", "+49 30 111111", "--config", str(config)]) == 0
    assert "recordings: 2 files were deleted" in capsys.readouterr().out
    assert [p.exists() for p in files.values()] == [False, False, True]
    store = SqliteStore(db)
    try:
        gone, kept = store.recording("u1"), store.recording("u3")
        assert gone is not None and gone.deleted_at is not None
        assert kept is not None and kept.deleted_at is None
        assert "recordings deleted 2, kept 0" in store.audit_entries(0, 1e12, 10)[-1].detail
    finally:
        store.close()
    # --db names no [recording] dir: an indexed file is named for the operator, and left alone
    assert main(["purge", "--caller", "+49 30 222222", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "1 file KEPT, delete by hand: acdbridge-u3.wav (--db does not say where)" in out
    assert files["u3"].exists()
