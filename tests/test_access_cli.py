"""`acdbridge users ...` through acdbridge.cli.main, on a real SQLite store (and the config)."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from acdbridge.access import passwords
from acdbridge.adapters.store import SqliteStore
from acdbridge.cli import main

PASSWORD = "a long passphrase for ana"


def users(monkeypatch: pytest.MonkeyPatch, *args: str, stdin: str = PASSWORD + "\n") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["users", *args])


@pytest.fixture(autouse=True)
def _user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.setenv("USER", "ops")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "acdbridge.toml"
    path.write_text(f'[store]\npath = "{tmp_path / "s.sqlite"}"\n\n[agents."Ana Torres"]\nqa_score = 90\n'
                    "\n[access]\nmin_password_length = 16\n")  # fmt: skip
    return path


def _audit(db: Path) -> list[tuple[str, ...]]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT actor, action, target, outcome, detail FROM audit ORDER BY id").fetchall()


def test_add_list_passwd_disable_enable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.sqlite"
    assert users(monkeypatch, "add", "ana", "--role", "supervisor", "--queue", "water", "--queue", "gas",
                 "--password-stdin", "--db", str(db)) == 0  # fmt: skip
    assert users(monkeypatch, "add", "root", "--role", "admin", "--password-stdin", "--db", str(db)) == 0
    capsys.readouterr()
    assert users(monkeypatch, "list", "--db", str(db)) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing == ["NAME  ROLE        AGENT  QUEUES     DISABLED",
                       "ana   supervisor  -      water,gas  no",
                       "root  admin       -      -          no"]  # fmt: skip
    store = SqliteStore(db)
    found = store.account("ana")
    assert found is not None and passwords.verify(found[1], PASSWORD)
    store.close()
    assert "argon2" not in "".join(listing)
    assert users(monkeypatch, "passwd", "ana", "--password-stdin", "--db", str(db),
                 stdin="another long passphrase\n") == 0  # fmt: skip
    assert users(monkeypatch, "disable", "ana", "--db", str(db)) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "account ana disabled: its sessions end within 10 s"
    store = SqliteStore(db)
    found = store.account("ana")
    assert found is not None and found[0].disabled and passwords.verify(found[1], "another long passphrase")
    store.close()
    assert users(monkeypatch, "enable", "ana", "--db", str(db)) == 0
    assert _audit(db) == [
        ("cli:ops", "user_add", "ana", "ok", "role supervisor"),
        ("cli:ops", "user_add", "root", "ok", "role admin"),
        ("cli:ops", "user_list", "", "ok", ""),
        ("cli:ops", "user_passwd", "ana", "ok", ""),
        ("cli:ops", "user_disable", "ana", "ok", ""),
        ("cli:ops", "user_enable", "ana", "ok", ""),
    ]


def test_refusals_are_clear_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.sqlite"
    with pytest.raises(SystemExit) as exc:  # argparse's own refusal of a role it does not know
        users(monkeypatch, "add", "ana", "--role", "boss", "--db", str(db))
    assert exc.value.code == 2 and "invalid choice: 'boss'" in capsys.readouterr().err
    cases = [
        (["add", "ana", "--role", "agent"], '--role agent needs --agent "Agent Name"'),
        (["add", "ana", "--role", "supervisor"], "--role supervisor needs at least one --queue"),
        (["add", "ana", "--role", "viewer", "--queue", "water"], "--queue is for --role supervisor only"),
        (["add", "ana", "--role", "viewer", "--agent", "Ana"], "--agent is for --role agent only"),
    ]
    for args, message in cases:
        assert users(monkeypatch, *args, "--password-stdin", "--db", str(db)) == 2
        assert message in capsys.readouterr().err
    assert not db.exists()  # refused before the store was even opened (or made)
    assert users(monkeypatch, "add", "ana", "--role", "viewer", "--password-stdin", "--db", str(db),
                 stdin="short\n") == 2  # fmt: skip
    assert "at least 12 characters long (it has 5); nothing was changed" in capsys.readouterr().err
    assert users(monkeypatch, "add", "ana", "--role", "viewer", "--password-stdin", "--db", str(db)) == 0
    assert users(monkeypatch, "add", "ana", "--role", "admin", "--password-stdin", "--db", str(db)) == 2
    assert "account 'ana' already exists" in capsys.readouterr().err
    assert users(monkeypatch, "disable", "nobody", "--db", str(db)) == 2
    assert "no account 'nobody'" in capsys.readouterr().err
    assert users(monkeypatch, "list", "--db", str(tmp_path / "typo.sqlite")) == 2
    assert "no store at" in capsys.readouterr().err and not (tmp_path / "typo.sqlite").exists()
    with pytest.raises(SystemExit):
        users(monkeypatch, "add", "Ana Torres", "--role", "viewer", "--db", str(db))
    assert "not a username: 'Ana Torres'" in capsys.readouterr().err
    assert [row[1:4] for row in _audit(db)] == [("user_add", "ana", "ok"), ("user_add", "ana", "refused"),
                                                 ("user_disable", "nobody", "refused")]  # fmt: skip


def test_with_a_config_agents_and_the_policy_come_from_it(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUDO_USER", "alice")
    add = ["add", "ana", "--role", "agent", "--password-stdin", "--config", str(config)]
    assert users(monkeypatch, *add, "--agent", "Ana Torez") == 2
    assert "--agent 'Ana Torez' is not an [agents.\"Name\"] of the config (known: Ana Torres)" in (
        capsys.readouterr().err)  # fmt: skip
    assert users(monkeypatch, *add, "--agent", "Ana Torres", stdin="fifteen chars!!\n") == 2
    assert "at least 16 characters" in capsys.readouterr().err  # [access] min_password_length
    assert users(monkeypatch, *add, "--agent", "Ana Torres") == 0
    assert users(monkeypatch, "list", "--config", str(config)) == 0
    assert "ana   agent  Ana Torres  -       no" in capsys.readouterr().out
    assert _audit(tmp_path / "s.sqlite")[0][:3] == ("cli:alice", "user_add", "ana")


def test_passwords_from_the_terminal_are_asked_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["a long passphrase one", "a long passphrase two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    db = tmp_path / "s.sqlite"
    assert main(["users", "add", "ana", "--role", "viewer", "--db", str(db)]) == 2
    assert "the two passwords differ" in capsys.readouterr().err
    monkeypatch.setattr("getpass.getpass", lambda prompt: "a long passphrase one")
    assert main(["users", "add", "ana", "--role", "viewer", "--db", str(db)]) == 0


def test_works_beside_a_running_daemon_holding_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "s.sqlite"
    daemon = SqliteStore(db, exclusive=True)  # what `acdbridge run` holds
    try:
        assert users(monkeypatch, "add", "ana", "--role", "viewer", "--password-stdin", "--db", str(db)) == 0
        assert daemon.account("ana") is not None
    finally:
        daemon.close()
