"""The caller directory (adapters/directory.py): CSV and SQLite, number normalisation, reloads and
errors that never reach the greeting; and the repeat-caller memory (adapters/callflow.py)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from acdbridge.adapters import callflow
from acdbridge.adapters.callflow import RecentCallers
from acdbridge.adapters.directory import Directory, normalise
from acdbridge.core.ivr import Caller

HEADER = "number,account,name,address,area,vip,language\n"
ROWS = (
    '+86-138-0000-0001,W-100231,Zhang San,"12 Zhongguancun St, Haidian",Haidian,0,zh\n'
    "13800000002,W-100232,María López,5 Calle Mayor,Chaoyang,1, es \n"
)


def csv_file(tmp_path: Path, text: str = HEADER + ROWS, name: str = "callers.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def sqlite_file(path: Path, rows: list[tuple[object, ...]]) -> Path:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE callers (number TEXT PRIMARY KEY, account TEXT, name TEXT, address TEXT,"
            " area TEXT, vip INTEGER, language TEXT)"
        )
        db.executemany("INSERT INTO callers VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    db.close()
    return path


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("+86 138 0000 0001", "8613800000001"),
        ("008613800000001", "8613800000001"),
        ("(0086) 138-0000-0001", "8613800000001"),
        ("13800000001", "13800000001"),
        ("010 1234", "0101234"),  # a single leading 0 (a trunk prefix) stays
        ("anonymous", ""),
        ("", ""),
    ],
)
def test_normalise(raw: str, key: str) -> None:
    assert normalise(raw) == key


# --- CSV -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number", ["+86 138 0000 0001", "008613800000001", "8613800000001", "+8613800000001"]
)
def test_csv_lookup_normalises_the_stored_and_the_asked_number(tmp_path: Path, number: str) -> None:
    directory = Directory(csv_file(tmp_path))
    caller = directory.lookup(number)
    assert caller == Caller(
        number="+86-138-0000-0001",
        account="W-100231",
        name="Zhang San",
        address="12 Zhongguancun St, Haidian",
        area="Haidian",
        vip=False,
        language="zh",
    )
    assert directory.errors == 0


def test_csv_lookup_of_a_plain_number_with_separators(tmp_path: Path) -> None:
    caller = Directory(csv_file(tmp_path)).lookup("138-0000-0002")
    assert caller is not None and caller.name == "María López"
    assert caller.vip is True and caller.language == "es"  # the language is stripped


def test_an_unknown_or_empty_number_is_none(tmp_path: Path) -> None:
    directory = Directory(csv_file(tmp_path))
    assert directory.lookup("13800000009") is None
    assert directory.lookup("13800000001") is None  # stored with +86: a different number
    assert directory.lookup("") is None and directory.lookup("anonymous") is None
    assert directory.errors == 0


def test_no_directory_configured_is_none() -> None:
    directory = Directory(None)
    assert directory.lookup("13800000001") is None and directory.errors == 0


@pytest.mark.parametrize(
    ("flag", "vip"),
    [("1", True), ("yes", True), ("TRUE", True), (" y ", True), ("VIP", True), ("0", False), ("", False),
     ("no", False), ("2", False), ("false", False)],
)  # fmt: skip
def test_vip_flag_parsing(tmp_path: Path, flag: str, vip: bool) -> None:
    path = csv_file(tmp_path, f"number,vip\n13800000001,{flag}\n")
    caller = Directory(path).lookup("13800000001")
    assert caller is not None and caller.vip is vip
    assert caller.account == "" and caller.language == ""  # absent columns are empty


def test_the_csv_is_read_again_when_its_modification_time_changes(tmp_path: Path) -> None:
    path = csv_file(tmp_path)
    directory = Directory(path)
    assert directory.lookup("13800000002") is not None
    mtime = path.stat().st_mtime
    path.write_text(HEADER + "13800000003,T-1,Chen Jing,,Chaoyang,1,zh\n", encoding="utf-8")
    os.utime(path, (mtime, mtime))  # same mtime: the cached rows stay
    assert directory.lookup("13800000002") is not None and directory.lookup("13800000003") is None
    os.utime(path, (mtime + 10, mtime + 10))
    assert directory.lookup("13800000002") is None
    caller = directory.lookup("13800000003")
    assert caller is not None and caller.name == "Chen Jing" and caller.vip
    assert directory.errors == 0


def test_a_csv_without_a_number_column_is_none_and_counted(tmp_path: Path) -> None:
    directory = Directory(csv_file(tmp_path, "phone,account\n13800000001,W-1\n"))
    assert directory.lookup("13800000001") is None
    assert directory.errors == 1
    assert directory.lookup("13800000001") is None  # every lookup: still never raises
    assert directory.errors == 2


def test_a_broken_reload_keeps_the_greeting_going(tmp_path: Path) -> None:
    path = csv_file(tmp_path)
    directory = Directory(path)
    assert directory.lookup("13800000002") is not None
    path.write_bytes(b"number,name\n13800000002,\xff\xfe broken\n")
    os.utime(path, (path.stat().st_mtime + 10,) * 2)
    assert directory.lookup("13800000002") is None and directory.errors == 1


def test_a_missing_csv_is_none_and_counted(tmp_path: Path) -> None:
    directory = Directory(tmp_path / "gone.csv")
    assert directory.lookup("13800000001") is None and directory.errors == 1


def test_a_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "callers.csv"
    path.write_text(HEADER + ROWS, encoding="utf-8-sig")
    directory = Directory(path)
    assert directory.lookup("13800000002") is not None and directory.errors == 0


# --- SQLite --------------------------------------------------------------------------------------


def test_sqlite_lookup(tmp_path: Path) -> None:
    path = sqlite_file(
        tmp_path / "callers.sqlite",
        [
            ("8613800000001", "W-100231", "Zhang San", "12 Zhongguancun St", "Haidian", 0, "zh"),
            ("13800000002", "W-100232", "María López", None, "Chaoyang", 1, None),
        ],
    )
    directory = Directory(path)
    caller = directory.lookup("+86 138 0000 0001")
    assert caller == Caller(
        "8613800000001", "W-100231", "Zhang San", "12 Zhongguancun St", "Haidian", False, "zh"
    )
    assert directory.lookup("008613800000001") == caller
    maria = directory.lookup("138 0000 0002")
    assert maria is not None and maria.vip is True
    assert maria.address == "" and maria.language == ""  # NULL reads as empty
    assert directory.lookup("13800000009") is None
    assert directory.errors == 0


def test_sqlite_without_a_callers_table_is_none_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite"
    sqlite3.connect(path).close()
    directory = Directory(path)
    assert directory.lookup("13800000001") is None and directory.errors == 1


def test_a_missing_sqlite_file_is_none_counted_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "gone.sqlite"
    directory = Directory(path)
    assert directory.lookup("13800000001") is None and directory.errors == 1
    assert not path.exists()  # opened read-only


def test_sqlite_in_a_directory_with_a_hash_in_its_name(tmp_path: Path) -> None:
    folder = tmp_path / "callers#1"
    folder.mkdir()
    path = sqlite_file(folder / "dir.sqlite", [("13800000001", "W-1", "Zhang San", "", "", 0, "zh")])
    directory = Directory(path)
    try:
        assert directory.lookup("13800000001") is not None
    finally:
        assert not (tmp_path / "callers").exists()  # no stray database created


def test_sqlite_numbers_stored_with_separators_match_like_csv(tmp_path: Path) -> None:
    path = sqlite_file(
        tmp_path / "callers.sqlite", [("+86 138 0000 0001", "W-1", "Zhang San", "", "", 0, "zh")]
    )
    assert Directory(path).lookup("+86 138 0000 0001") is not None


# --- repeat callers ------------------------------------------------------------------------------


def test_a_number_seen_again_within_the_window_is_a_repeat() -> None:
    recent = RecentCallers(window_s=3600)
    assert recent.seen("13800000001", 1000.0) is False
    assert recent.seen("13800000001", 1000.0 + 3600) is True  # the window's end is inside
    assert recent.seen("13800000002", 1000.0 + 3600) is False  # another number


def test_a_number_seen_after_the_window_is_not_a_repeat() -> None:
    recent = RecentCallers(window_s=3600)
    recent.seen("13800000001", 0.0)
    assert recent.seen("13800000001", 3600.5) is False
    # the window runs from the last call
    assert recent.seen("13800000001", 3600.5 + 3000) is True
    assert recent.seen("13800000001", 3600.5 + 6000) is True


def test_repeat_numbers_are_normalised() -> None:
    recent = RecentCallers(window_s=60)
    assert recent.seen("+86 138 0000 0001", 0.0) is False
    assert recent.seen("008613800000001", 10.0) is True
    assert recent.seen("86-138-0000-0001", 20.0) is True


def test_a_caller_without_a_number_is_never_a_repeat_nor_remembered() -> None:
    recent = RecentCallers(window_s=60)
    assert recent.seen("", 0.0) is False and recent.seen("anonymous", 1.0) is False
    assert recent.seen("", 2.0) is False and recent.last == {}


def test_the_memory_is_bounded_oldest_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(callflow, "RECENT_KEPT", 3)
    recent = RecentCallers(window_s=1e9)
    for i, number in enumerate(["1001", "1002", "1003"]):
        recent.seen(number, float(i))
    assert recent.seen("1001", 10.0) is True  # seen again: now the newest
    recent.seen("1004", 11.0)  # over the bound: 1002 (the oldest) is forgotten
    assert len(recent.last) == 3 and set(recent.last) == {"1003", "1001", "1004"}
    assert recent.seen("1002", 12.0) is False
    assert len(recent.last) == 3
