"""The config validator (config.py, flowconfig.py, settings/): every check with one bad config,
one file with many mistakes reporting all of them, and secrets that never leak."""

from __future__ import annotations

import copy
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from acdbridge import config
from acdbridge.config import AmiConfig, ConfigError, HttpConfig
from acdbridge.settings.problems import dotted

REPO = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-Value-42"


def prompts(*names: str) -> dict[str, dict[str, str]]:
    return {"en": {n: f"{n} text" for n in names}}


def good(tmp: Path) -> dict[str, Any]:
    """A config with neither errors nor warnings."""
    return {
        "ami": {"host": "127.0.0.1", "port": 5038, "username": "acdbridge", "secret": SECRET},
        "store": {"path": str(tmp / "store.sqlite")},
        "http": {"listen": "127.0.0.1:9108"},
        "kpi": {"timezone": "Asia/Shanghai", "windows_min": [15, 60], "interval_min": 30},
        "queues": {"water": {"sl_threshold_s": 20, "sl_target": 0.8, "wrapup_s": 5}},
        "agi": {"listen": "127.0.0.1:24573", "max_sessions": 50},
        "directory": {"path": str(REPO / "examples/callers.csv")},
        "routing": {
            "call_types": {"inquiry": "water", "billing": "billing"},
            "languages": {"en": ""},
            "groups": {"water": {"skill": "water"}, "billing": {"skill": "billing", "widen_to": ["water"]}},
        },
        "hotlines": {
            "water": {
                "dids": ["6000", "+861012345"],
                "default_queue": "water",
                "languages": ["en"],
                "menu": {"1": "inquiry", "2": "billing"},
                "hours": ["mon-fri 08:00-20:00"],
                "prompts": prompts("greeting", "menu", "invalid", "closed"),
            },
            "gas": {
                "dids": ["6100"],
                "default_queue": "billing",
                "default_call_type": "billing",
                "languages": ["en"],
                "prompts": prompts("greeting", "closed"),
            },
        },
        "survey": {"prompts": prompts("survey", "thanks", "invalid")},
        "dispositions": {"1": {"code": "resolved"}, "2": {"code": "callback", "resolved": False}},
        "agents": {
            "Ana Torres": {"extension": "1001", "skills": {"water": 5, "billing": 3}, "qa_score": 90},
            "Chen Li": {"extension": "1002", "interface": "PJSIP/1002", "skills": {"water": 2}},
        },
    }


def change(d: dict[str, Any], dotted_path: str, value: Any) -> dict[str, Any]:
    """A copy of d with the value at "a/b/c" set (None deletes it)."""
    d = copy.deepcopy(d)
    *parents, last = dotted_path.split("/")
    node = d
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        del node[last]
    else:
        node[last] = value
    return d


def check(d: dict[str, Any], env: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    _cfg, p = config.validate(d, "t.toml", env or {})
    return p.errors, p.warnings


def one_error(d: dict[str, Any]) -> str:
    errors, _ = check(d)
    assert len(errors) == 1, errors
    return errors[0]


def test_the_good_config_has_no_problem(tmp_path: Path) -> None:
    assert check(good(tmp_path)) == ([], [])


def test_the_shipped_examples() -> None:
    lab = config.load(REPO / "examples/acdbridge-lab.toml")
    assert lab.ami.secret == "acdbridge-change-me"  # the lab's own, inline
    with pytest.raises(ConfigError) as info:  # production: the secret is a credential or a file
        config.parse(config.read(REPO / "examples/acdbridge.toml"), "acdbridge.toml", env={})
    assert info.value.problems == [
        "acdbridge.toml: ami.secret: missing: set ami.secret_file (chmod 600), ami.secret, or the "
        "systemd credential ami-secret (LoadCredential=ami-secret:/path)"
    ]


# --- types and ranges -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("ami/ping_interval_s", 1e-9, "ami.ping_interval_s: out of range 1-3600: 1e-09"),
        ("ami/ping_interval_s", 0, "ami.ping_interval_s: must be a positive number (1-3600), got 0.0"),
        ("ami/ping_interval_s", 7200, "ami.ping_interval_s: out of range 1-3600: 7200.0"),
        ("ami/action_timeout_s", 0.1, "ami.action_timeout_s: out of range 0.5-300: 0.1"),
        ("ami/port", 0, "ami.port: must be a positive number (1-65535), got 0"),
        ("ami/port", 65536, "ami.port: out of range 1-65535: 65536"),
        ("ami/port", "5038", "ami.port: expected int, got a string '5038'"),
        ("ami/port", True, "ami.port: expected int, got a boolean True"),
        ("ami/host", "", "ami.host: must not be empty"),
        ("ami/ping_interval_s", float("nan"), "ami.ping_interval_s: must be a finite number"),
        ("agi/max_sessions", 0, "agi.max_sessions: must be a positive number (1-100000), got 0"),
        ("agi/read_timeout_s", 0, "agi.read_timeout_s: must be a positive number"),
        ("kpi/interval_min", 7, "kpi.interval_min: 7: the report interval_s must divide a day"),
        ("kpi/windows_min", [15, -1], "kpi.windows_min: expected an array of minutes"),
        ("kpi/timezone", "Mars/Olympus", "kpi.timezone: unknown timezone 'Mars/Olympus'"),
        ("queues/water/sl_target", 1.5, "queues.water: sl_target must be a ratio between 0 and 1"),
        ("queues/water/wrapup_s", -1, "queues.water.wrapup_s: expected seconds >= 0, got -1"),
        ("agents/Ana Torres/qa_score", 101, 'agents."Ana Torres".qa_score: out of range 0-100'),
        ("agents/Ana Torres/skills/water", 6, 'agents."Ana Torres".skills.water: proficiency must be 1-5'),
        ("hotlines/water/menu_tries", 0, "hotlines.water.menu_tries: must be a positive number"),
        ("hotlines/water/hours", ["mon-fri 20:00-08:00"], "hotlines.water.hours: 'mon-fri 20:00-08:00'"),
        ("hotlines/water/hours", ["weekdays 8-5"], "hotlines.water.hours: 'weekdays 8-5': expected e.g."),
        ("hotlines/water/holidays", ["2026-13-01"], "hotlines.water.holidays: '2026-13-01'"),
        ("routing/repeat_window_h", 0, "routing.repeat_window_h: must be a positive number"),
        ("routing/groups/water/max_penalty", -1, "routing.groups.water.max_penalty: out of range 0-100"),
        ("store/path", 5, "store.path: expected str, got an integer 5"),
    ],
)
def test_types_and_ranges(tmp_path: Path, path: str, value: Any, expected: str) -> None:
    assert one_error(change(good(tmp_path), path, value)).startswith(f"t.toml: {expected}")


def test_reconnect_min_above_max(tmp_path: Path) -> None:
    d = change(change(good(tmp_path), "ami/reconnect_min_s", 10), "ami/reconnect_max_s", 5)
    assert one_error(d) == "t.toml: ami.reconnect_max_s: smaller than ami.reconnect_min_s (5 < 10)"


@pytest.mark.parametrize(
    "listen", ["9108", "localhost", "127.0.0.1:", "127.0.0.1:0", "h:70000", "h:x", "::1:80", "h:٣٣"]
)
def test_listeners_use_one_parser(tmp_path: Path, listen: str) -> None:
    for section in ("http", "agi"):
        msg = one_error(change(good(tmp_path), f"{section}/listen", listen))
        assert msg == f"t.toml: {section}.listen: expected HOST:PORT with a port 1-65535, got {listen!r}"


def test_an_ipv6_listener(tmp_path: Path) -> None:
    cfg = config.parse(change(good(tmp_path), "http/listen", "[::1]:9200"), "t.toml", env={})
    assert (cfg.http.host, cfg.http.port) == ("::1", 9200)


@pytest.mark.parametrize("http", ["127.0.0.1:24573", "0.0.0.0:24573"])
def test_the_agi_listener_is_not_the_http_listener(tmp_path: Path, http: str) -> None:
    d = change(change(good(tmp_path), "http/listen", http), "http/token", "t0ken")
    assert one_error(d) == "t.toml: agi.listen: 127.0.0.1:24573 is also http.listen: one port, one listener"


def test_an_empty_http_token_is_an_error(tmp_path: Path) -> None:
    assert one_error(change(good(tmp_path), "http/token", "")).startswith(
        "t.toml: http.token: is empty, which would turn the token off"
    )


# --- unknown keys in every table ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("ami", "ami"), ("store", "store"), ("http", "http"), ("kpi", "kpi"),
        ("queues/water", "queues.water"),
        ("agents/Ana Torres", 'agents."Ana Torres"'), ("agi", "agi"), ("directory", "directory"),
        ("routing", "routing"), ("routing/groups/water", "routing.groups.water"),
        ("hotlines/water", "hotlines.water"), ("survey", "survey"), ("dispositions/1", "dispositions.1"),
    ],
)  # fmt: skip
def test_unknown_keys_are_named_with_the_known_ones(tmp_path: Path, path: str, key: str) -> None:
    msg = one_error(change(good(tmp_path), f"{path}/colour", 1))
    assert msg.startswith(f"t.toml: {key}: unknown keys ['colour']; known: ")


def test_unknown_keys_of_a_notice_and_mqtt(tmp_path: Path) -> None:
    notice = {"name": "n", "start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00",
              "prompts": {"en": "x"}, "colour": 1}  # fmt: skip
    assert one_error(change(good(tmp_path), "notices", [notice])).startswith(
        "t.toml: notices[0]: unknown keys ['colour']"
    )
    assert one_error(change(good(tmp_path), "mqtt", {"colour": 1})).startswith(
        "t.toml: mqtt.colour: unknown key"
    )


def test_unknown_sections(tmp_path: Path) -> None:
    assert one_error(change(good(tmp_path), "amy", {})).startswith(
        "t.toml: unknown sections ['amy']; known: "
    )


# --- uniqueness ----------------------------------------------------------------------------------


def test_a_did_of_two_hotlines(tmp_path: Path) -> None:
    d = change(good(tmp_path), "hotlines/gas/dids", ["6100", "+861012345"])
    assert one_error(d) == 't.toml: hotlines.gas.dids: "+861012345" is also a DID of hotline water'
    d = change(good(tmp_path), "hotlines/gas/dids", ["6100", "6100"])
    assert one_error(d) == 't.toml: hotlines.gas.dids: "6100" listed twice'


def test_two_agents_with_one_extension_or_interface(tmp_path: Path) -> None:
    d = change(good(tmp_path), "agents/Chen Li/extension", "1001")
    assert (
        one_error(d) == 't.toml: agents."Chen Li".extension: \'1001\' is also agents."Ana Torres".extension'
    )
    d = change(good(tmp_path), "agents/Chen Li/interface", "PJSIP/1001")
    assert (
        one_error(d)
        == 't.toml: agents."Chen Li".interface: \'PJSIP/1001\' is also agents."Ana Torres".interface'
    )


def test_group_names_differing_only_in_case(tmp_path: Path) -> None:
    d = change(good(tmp_path), "routing/groups/Water", {"skill": "water", "language": "x"})
    errors, _ = check(change(d, "routing/languages/es", "x"))
    assert (
        "t.toml: routing.groups.Water: the same queue as routing.groups.water (names ignore case)" in errors
    )


def test_two_dispositions_with_one_code_and_01_vs_1(tmp_path: Path) -> None:
    d = change(good(tmp_path), "dispositions/3", {"code": "resolved"})
    assert one_error(d) == "t.toml: dispositions.3.code: 'resolved' is also disposition 1"
    d = change(good(tmp_path), "pause_reasons", {"1": "break", "01": "lunch"})
    assert one_error(d) == "t.toml: pause_reasons: '01' is the same code as '1'"


# --- references ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("routing/groups/billing/widen_to", ["gas"],
         "routing.groups.billing.widen_to: skill 'gas' is defined nowhere"),
        ("routing/call_types/leak", "plumbing",
         "routing.call_types.leak: no routing group serves skill 'plumbing'"),
        ("hotlines/water/menu/3", "leak",
         "hotlines.water.menu: call types ['leak'] not in routing.call_types"),
        ("hotlines/gas/default_call_type", "leak",
         "hotlines.gas.default_call_type: 'leak' not in routing.call_types"),
        ("hotlines/gas/default_queue", "gas", "hotlines.gas.default_queue: 'gas' is neither a routing group"),
        ("routing/groups/water/language", "french",
         "routing.groups.water.language: 'french' is not the skill"),
        ("hotlines/gas/default_queue", None, "hotlines.gas: default_queue is required"),
        ("routing/groups/water/skill", None, "routing.groups.water: skill is required"),
    ],
)  # fmt: skip
def test_every_reference_resolves(tmp_path: Path, path: str, value: Any, expected: str) -> None:
    errors, _ = check(change(good(tmp_path), path, value))
    assert any(e.startswith(f"t.toml: {expected}") for e in errors), errors


def test_a_hotline_language_routing_does_not_know(tmp_path: Path) -> None:
    d = change(good(tmp_path), "hotlines/gas/languages", ["en", "fr"])
    d = change(d, "hotlines/gas/prompts/fr", {"greeting": "g", "closed": "c"})
    d = change(d, "survey/prompts/fr", {"survey": "s", "thanks": "t", "invalid": "i"})
    assert one_error(d) == "t.toml: hotlines.gas.languages: ['fr'] not in routing.languages"


def test_a_prompt_for_a_language_the_hotline_does_not_speak(tmp_path: Path) -> None:
    d = change(good(tmp_path), "hotlines/gas/prompts/fr", {"greeting": "g", "closed": "c"})
    assert one_error(d) == "t.toml: hotlines.gas.prompts.fr: not one of the languages ['en']"


def test_a_notice_for_an_unknown_hotline_and_two_of_one_name(tmp_path: Path) -> None:
    notice = {"name": "n", "hotlines": ["steam"], "start": "2026-01-01T00:00:00+08:00",
              "end": "2026-01-02T00:00:00+08:00", "prompts": {"en": "x"}}  # fmt: skip
    errors, _ = check(change(good(tmp_path), "notices", [notice, {**notice, "hotlines": []}]))
    assert errors == [
        "t.toml: notices[0].hotlines: ['steam'] are not hotlines",
        "t.toml: notices: two notices are named 'n' (their prompts would overwrite each other)",
    ]


# --- files -----------------------------------------------------------------------------------------


def test_the_store_path(tmp_path: Path) -> None:
    assert (
        one_error(change(good(tmp_path), "store/path", str(tmp_path)))
        == f"t.toml: store.path: {tmp_path} is a directory, not a file"
    )
    (tmp_path / "plain").write_text("")
    msg = one_error(change(good(tmp_path), "store/path", str(tmp_path / "plain/x/store.sqlite")))
    assert msg == f"t.toml: store.path: {tmp_path / 'plain'} is not a directory"
    deep = tmp_path / "new/dir/store.sqlite"  # the store creates its directories
    assert check(change(good(tmp_path), "store/path", str(deep))) == ([], [])


def test_the_capture_directory_must_exist(tmp_path: Path) -> None:
    d = change(good(tmp_path), "ami/capture", str(tmp_path / "nope/ami.raw"))
    assert (
        one_error(d) == f"t.toml: ami.capture: directory {tmp_path / 'nope'} does not exist "
        "(the daemon does not create it)"
    )
    assert check(change(good(tmp_path), "ami/capture", str(tmp_path / "ami.raw"))) == ([], [])
    # the capture is the journal now, a directory of segments: an existing directory is fine,
    # a capture file from an older version is not
    assert check(change(good(tmp_path), "ami/capture", str(tmp_path))) == ([], [])
    old = tmp_path / "old.raw"
    old.write_bytes(b"Asterisk Call Manager/9.0.0\r\n")
    assert "is a file, not a directory" in one_error(change(good(tmp_path), "ami/capture", str(old)))


def test_the_caller_directory(tmp_path: Path) -> None:
    missing = tmp_path / "callers.csv"
    d = change(good(tmp_path), "directory/path", str(missing))
    assert one_error(d) == f"t.toml: directory.path: cannot read {missing}: No such file or directory"
    missing.write_text("phone,name\n1,x\n")
    assert (
        one_error(d)
        == f"t.toml: directory.path: {missing} has no 'number' column in its header ['phone', 'name']"
    )
    missing.write_bytes(b"number\n\xff\n")
    assert "is not a UTF-8 CSV file" in one_error(d)
    db = tmp_path / "callers.sqlite"
    db.write_text("number\n")
    d = change(good(tmp_path), "directory/path", str(db))
    assert one_error(d) == f"t.toml: directory.path: {db} is neither a .csv file nor an SQLite database"
    db.unlink()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE other (x)")
    assert "no usable callers table: no such table: callers" in one_error(d)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE callers (number TEXT)")
    assert check(d) == ([], [])


# --- the file itself -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'[ami]\nsecret = "\xe9t\xe9"\n', "not UTF-8 text (byte 0xe9 on line 2)"),
        (b"[ami\n", "not valid TOML: "),
        (b"<xml/>\n", "not valid TOML: "),
    ],
)
def test_a_file_that_is_not_utf8_toml_gives_one_line(tmp_path: Path, raw: bytes, expected: str) -> None:
    path = tmp_path / "acd.toml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert str(info.value).startswith(f"{path}: {expected}") and "\n" not in str(info.value)


def test_an_empty_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = tmp_path / "acd.toml"
    path.write_text("")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert info.value.problems == [
        f"{path}: the file is empty: at least [ami] with the PBX's address and secret is needed",
        f"{path}: ami.secret: missing: set ami.secret_file (chmod 600), ami.secret, or the systemd "
        "credential ami-secret (LoadCredential=ami-secret:/path)",
    ]
    assert info.value.exit_status == 2


def test_many_mistakes_are_all_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "acd.toml"
    path.write_text(
        '[ami]\nping_interval_s = 1e-9\nreconnect_min_s = 9\nreconnect_max_s = 3\ncolour = "red"\n'
        f'[store]\npath = "{tmp_path}"\n[http]\nlisten = "0.0.0.0:24573"\ntoken = ""\n'
        '[kpi]\ntimezone = "Mars/Olympus"\n[agi]\nlisten = "127.0.0.1:24573"\nmax_sessions = 0\n'
        f'[directory]\npath = "{tmp_path}/none.csv"\n'
        '[routing]\ncall_types = { a = "x" }\n[routing.groups.x]\nskill = "x"\nwiden_to = ["nothing"]\n'
        '[hotlines.one]\ndids = ["1"]\ndefault_queue = "x"\nmenu = { "1" = "a" }\n'
        'hours = ["mon-fri 9-5"]\n[hotlines.one.prompts.en]\ngreeting = "g"\nmenu = "m"\ninvalid = "i"\n'
        'closed = "c"\n[hotlines.two]\ndids = ["1"]\ndefault_queue = "x"\n[hotlines.two.prompts.en]\n'
        'greeting = "g"\nclosed = "c"\n'
        '[survey.prompts.en]\nsurvey = "s"\nthanks = "t"\ninvalid = "i"\n'
        '[agents.A]\nextension = "1"\nskills = { y = 9 }\n[agents.B]\nextension = "1"\n'
    )
    with pytest.raises(ConfigError) as info:
        config.load(path)
    keys = [line.split(": ")[1] for line in info.value.problems]
    assert keys == [
        "ami", "ami.secret", "ami.reconnect_max_s", "ami.ping_interval_s", "http.token", "kpi.timezone",
        "hotlines.one.hours", "hotlines.two.dids", "agi.max_sessions", "agents.A.skills.y", "agi.listen",
        "store.path", "directory.path", "routing.groups.x.widen_to", "agents.B.extension",
    ]  # fmt: skip
    assert str(info.value).startswith("15 problems:\n")
    _cfg, p = config.validate(config.read(path), str(path), {})
    assert [w.split(": ")[1] for w in p.warnings] == ["http.listen", "routing.groups.x"]


# --- warnings ---------------------------------------------------------------------------------------


def test_a_skill_group_no_agent_can_serve(tmp_path: Path) -> None:
    d = change(good(tmp_path), "agents/Ana Torres/skills", {"water": 5})
    assert check(d) == ([], [])  # billing widens to water: the water agents serve it
    errors, warnings = check(change(d, "routing/groups/billing/widen_to", []))
    assert errors == []
    assert warnings == [
        "t.toml: routing.groups.billing: warning: no agent has skill 'billing': "
        "callers routed here wait for nobody"
    ]
    d = change(change(good(tmp_path), "agents/Chen Li/skills", {}), "agents/Ana Torres/skills", {})
    assert len(check(d)[1]) == 2  # the widen_to skill does not help when nobody has it


@pytest.mark.parametrize(("listen", "warned"), [
    ("0.0.0.0:9108", True), ("[::]:9108", True), ("wallboard.lan:9108", True),
    ("[::1]:9108", False), ("localhost:9108", False),
])  # fmt: skip
def test_http_off_loopback_without_tls_is_a_warning(tmp_path: Path, listen: str, warned: bool) -> None:
    errors, warnings = check(change(good(tmp_path), "http/listen", listen))
    assert errors == [] and (warnings != []) == warned
    if warned:
        assert warnings[0].startswith("t.toml: http.listen: warning: ") and "without tls_cert" in warnings[0]


def test_interface_without_extension_is_ignored_with_a_warning(tmp_path: Path) -> None:
    d = change(good(tmp_path), "agents/Zed", {"interface": "PJSIP/9", "qa_score": 80})
    assert check(d) == ([], ['t.toml: agents.Zed.interface: warning: ignored without agents.extension: not a '
                             'routing profile'])  # fmt: skip


# --- secrets ----------------------------------------------------------------------------------------


def test_a_secret_file_with_its_trailing_newline_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "ami-secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    d = change(change(good(tmp_path), "ami/secret", None), "ami/secret_file", str(secret))
    cfg, p = config.validate(d, "t.toml", {})
    assert (p.errors, p.warnings, cfg.ami.secret) == ([], [], SECRET)
    secret.chmod(0o644)
    _cfg, p = config.validate(d, "t.toml", {})
    assert p.warnings == [
        f"t.toml: ami.secret_file: warning: {secret} is readable by others (mode 0644); chmod 600 it"
    ]


BAD_SECRET_FILES = [(None, "cannot read {}: No such file or directory"), (b"\n", "{} is empty"),
                    (b"\xff\n", "{} is not UTF-8 text")]  # fmt: skip


@pytest.mark.parametrize(("content", "expected"), BAD_SECRET_FILES)
def test_a_bad_secret_file(tmp_path: Path, content: bytes | None, expected: str) -> None:
    secret = tmp_path / "ami-secret"
    if content is not None:
        secret.write_bytes(content)
        secret.chmod(0o600)
    d = change(change(good(tmp_path), "ami/secret", None), "ami/secret_file", str(secret))
    assert one_error(d) == f"t.toml: ami.secret_file: {expected.format(secret)}"


def test_secret_and_secret_file_together(tmp_path: Path) -> None:
    d = change(good(tmp_path), "ami/secret_file", str(tmp_path / "x"))
    assert one_error(d) == "t.toml: ami.secret: give either secret or secret_file, not both"


def test_systemd_credentials(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ami-secret").write_text(SECRET + "\n")
    (creds / "mqtt-password").write_text("mqtt-" + SECRET)
    d = change(change(good(tmp_path), "ami/secret", None), "mqtt", {"username": "acd"})
    cfg, p = config.validate(d, "t.toml", {"CREDENTIALS_DIRECTORY": str(creds)})
    assert (p.errors, p.warnings) == ([], [])
    assert cfg.ami.secret == SECRET and cfg.mqtt is not None and cfg.mqtt.password == "mqtt-" + SECRET
    cfg, p = config.validate(
        change(d, "ami/secret", "inline"), "t.toml", {"CREDENTIALS_DIRECTORY": str(creds)}
    )
    assert cfg.ami.secret == "inline"  # the config's own key wins over the credential
    assert check(d, {"CREDENTIALS_DIRECTORY": str(tmp_path / "none")})[0] == [
        "t.toml: ami.secret: missing: set ami.secret_file (chmod 600), ami.secret, or the systemd credential "
        "ami-secret (LoadCredential=ami-secret:/path)",
        "t.toml: mqtt.password: missing while mqtt.username is set: set mqtt.password_file (chmod 600), "
        "mqtt.password, or the systemd credential mqtt-password",
    ]


def test_an_mqtt_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    cfg, p = config.validate(
        change(good(tmp_path), "mqtt", {"username": "u", "password_file": str(secret)}), "t", {}
    )
    assert p.errors == [] and cfg.mqtt is not None and (cfg.mqtt.username, cfg.mqtt.password) == ("u", "pw")


@pytest.mark.parametrize("path", ["ami/secret", "http/token", "mqtt/password"])
@pytest.mark.parametrize("value", [87654321, ["s3cr3t-Value-42"], {"v": "s3cr3t-Value-42"}])
def test_a_secret_of_the_wrong_type_is_not_echoed(tmp_path: Path, path: str, value: Any) -> None:
    d = change(good(tmp_path), path, value)
    if path.startswith("mqtt"):
        d = change(d, "mqtt/username", "u")
    msg = one_error(d)
    assert msg.startswith(f"t.toml: {path.replace('/', '.')}: expected str, got a") and "s3cr3t" not in msg
    assert "87654321" not in msg


def test_secrets_are_not_in_reprs_or_errors(tmp_path: Path) -> None:
    d = change(good(tmp_path), "http/token", "t0ken-" + SECRET)
    cfg = config.parse(d, "t.toml", env={})
    assert SECRET not in repr(cfg) and SECRET not in repr(cfg.ami) and SECRET not in repr(cfg.http)
    assert repr(AmiConfig(secret="x")).count("'x'") == 0 and "secret" not in repr(HttpConfig(token="x"))
    with pytest.raises(ConfigError) as info:
        config.parse(change(d, "ami/port", 0), "t.toml", env={})
    assert SECRET not in str(info.value)


def test_no_built_in_secret() -> None:
    assert AmiConfig().secret == ""
    assert AmiConfig().port == 5038  # Asterisk's own port, not the lab's


def test_dotted_keys_quote_what_toml_quotes() -> None:
    assert dotted("agents", "Ana Torres", "skills") == 'agents."Ana Torres".skills'
    assert dotted("notices", 0, "end") == "notices[0].end"
    assert dotted("agents", "Lucía") == 'agents."Lucía"'


# --- the PBX comparison's pure part (settings/pbxcheck.py; the real PBX: tests/integration) ---------


def entry(context: str, exten: str, priority: int, app: str, data: str = "") -> dict[str, str]:
    return {
        "Context": context,
        "Extension": exten,
        "Priority": str(priority),
        "Application": app,
        "AppData": data,
    }


DIALPLAN = [
    entry("inbound", "6000", 1, "Set", "ACD_DEFAULT_QUEUE=water"),
    entry("inbound", "6000", 2, "Goto", "acd-greeting,water,1"),
    entry("inbound", "+861012345", 1, "GotoIf", '$["${X}" = "1"]?acd-greeting,water,1:queue-entry,water,1'),
    entry("inbound", "_61XX", 1, "Goto", "acd-greeting,gas,1"),
    entry("acd-greeting", "_[a-z].", 1, "AGI", "${ACD_AGI}/hotline/${EXTEN}"),
    entry("queue-entry", "_[a-z].", 1, "Queue", "${EXTEN}"),
    entry("queue-entry", "_[a-z].", 2, "AGI", "${ACD_AGI}/survey"),
    entry("lab-agents", "_X.", 1, "Answer"),
]


def facts(**changes: Any) -> Any:
    from acdbridge.settings.amisession import PbxFacts

    queue = [("strategy", "rrmemory"), ("wrapuptime", "5")]
    f = PbxFacts(
        files={
            "manager.conf": {
                "general": [("timestampevents", "yes")],
                "acdbridge": [
                    ("read", "call,agent"),
                    ("read", "dialplan"),
                    ("write", "agent,reporting,config,user"),
                ],
            },
            "queues.conf": {"general": [], "water": queue, "billing": queue},
            "pjsip.conf": {"1001": [("type", "endpoint")], "1002": [("type", "aor"), ("type", "endpoint")]},
            "queuerules.conf": {},
        },
        dialplan=list(DIALPLAN),
        globals={"ACD_AGI": "agi://127.0.0.1:24573"},
    )
    for key, value in changes.items():
        setattr(f, key, value)
    return f


def compare(d: dict[str, Any], f: Any) -> tuple[list[str], list[str]]:
    from acdbridge.settings.pbxcheck import check_facts

    cfg, p = config.validate(d, "t.toml", {})
    assert p.errors == []
    check_facts(cfg, f, p)
    return p.errors, p.warnings


def test_extension_patterns_and_the_dialplan_walk() -> None:
    from acdbridge.settings.pbxcheck import _pattern, agi_urls

    assert [bool(_pattern("_60XX").match(x)) for x in ("6000", "600", "60000")] == [True, False, False]  # type: ignore[union-attr]
    assert [bool(_pattern("_[a-z].").match(x)) for x in ("water", "w", "6000")] == [True, False, False]  # type: ignore[union-attr]
    assert bool(_pattern("_NZ!").match("21")) and not bool(_pattern("_NZ!").match("10"))  # type: ignore[union-attr]
    g = {"ACD_AGI": "agi://h:24573"}
    assert agi_urls(DIALPLAN, "inbound", "6000", g) == ["agi://h:24573/hotline/water"]
    assert agi_urls(DIALPLAN, "inbound", "6100", g) == ["agi://h:24573/hotline/gas"]
    assert agi_urls(DIALPLAN, "inbound", "+861012345", g) == [
        "agi://h:24573/hotline/water",
        "agi://h:24573/survey",
    ]
    assert agi_urls(DIALPLAN, "inbound", "7000", g) == []


def test_a_pbx_that_matches(tmp_path: Path) -> None:
    assert compare(good(tmp_path), facts()) == ([], [])


def test_pbx_mistakes_each_one_line(tmp_path: Path) -> None:
    f = facts()
    assert f.files["manager.conf"] is not None and f.files["queues.conf"] is not None
    f.files["manager.conf"]["general"] = [("timestampevents", "no")]
    f.files["manager.conf"]["acdbridge"] = [("read", "call"), ("write", "reporting")]
    del f.files["queues.conf"]["billing"]
    f.files["queues.conf"]["water"] = [("wrapuptime", "0")]
    f.dialplan = [e for e in DIALPLAN if e["Extension"] != "_61XX"]
    d = change(good(tmp_path), "routing/groups/water/rule", "widen")
    d = change(d, "agents/Chen Li/interface", "Local/1002@lab-agents/n")
    d = change(d, "agents/Ana Torres/interface", "PJSIP/1003")
    errors, warnings = compare(d, f)
    assert [e.split(": ")[1] for e in errors] == [
        "ami", "ami.username", "ami.username", "ami.username", "routing.groups.billing",
        "queues.water.wrapup_s", "routing.groups.water.rule", 'agents."Ana Torres".interface',
        "hotlines.gas.dids",
    ]  # fmt: skip
    assert "lacks read class agent" in errors[1] and "lacks read class dialplan" in errors[2]
    assert "lacks write class agent" in errors[3]
    assert warnings == [
        "t.toml: ami.username: warning: the manager user acdbridge lacks write class config: the daemon "
        "cannot read wrapuptime (GetConfig queues.conf) and uses queues.*.wrapup_s",
        "t.toml: ami.username: warning: the manager user acdbridge lacks write class user: the web desk's "
        "disposition buttons (AMI UserEvent AcdDisposition) are refused; *55N still works",
    ]


def test_what_the_user_may_not_read_is_a_warning(tmp_path: Path) -> None:
    refused = {"GetConfig manager.conf": "Permission denied", "GetConfig queues.conf": "Permission denied",
               "GetConfig pjsip.conf": "Permission denied", "ShowDialPlan": "Permission denied"}  # fmt: skip
    f = facts(files=dict.fromkeys(FILES_CHECKED), dialplan=None, denied=refused)
    errors, warnings = compare(good(tmp_path), f)
    assert errors == []
    assert [w.split(": ")[1] for w in warnings] == ["ami", "ami", 'agents."Ana Torres".interface',
                                                   'agents."Chen Li".interface', "hotlines"]  # fmt: skip
    assert all("Permission denied" in w and "lacks write class" in w for w in warnings)


FILES_CHECKED = ("manager.conf", "queues.conf", "pjsip.conf", "queuerules.conf")


def test_a_postgresql_store_wants_the_journal_in_a_directory_of_its_own() -> None:
    data = {"ami": {"secret": "s"}, "store": {"url": "postgresql://acd@db/acd"}}
    _, p = config.validate(data, "c.toml", env={})
    assert (
        p.errors == [] and len(p.warnings) == 1 and p.warnings[0].startswith("c.toml: journal.dir: warning")
    )
    _, p = config.validate({**data, "journal": {"dir": "/var/lib/acdbridge/journal"}}, "c.toml", env={})
    assert p.warnings == []


def test_the_trackers_limits_come_from_the_config() -> None:
    data = {"ami": {"secret": "s"}, "limits": {"max_callers": 500, "caller_max_age_h": 2}}
    cfg, p = config.validate(data, "c.toml", env={})
    assert p.errors == [] and cfg.limits.max_callers == 500 and cfg.limits.caller_max_age_s == 7200
    assert cfg.limits.max_agents == 5000  # the rest keep their defaults
    _, p = config.validate({"ami": {"secret": "s"}, "limits": {"max_queues": 0, "max_seats": 3}}, "c.toml")
    assert sorted(p.errors) == [
        "c.toml: limits.max_queues: must be a positive number (1-500000), got 0",
        "c.toml: limits: unknown keys ['max_seats']; known: caller_max_age_h, max_agents, "
        "max_callers, max_channels, max_members, max_queues",
    ]


def test_supervisor_phones_without_write_class_originate_are_a_warning(tmp_path: Path) -> None:
    f = facts()  # the test PBX's user: write class user but not originate
    assert compare(good(tmp_path), f) == ([], [])  # no phones: originate is not needed
    _errors, warnings = compare(change(good(tmp_path), "supervisor/phones", {"sue": "PJSIP/9201"}), f)
    assert warnings == [
        "t.toml: ami.username: warning: the manager user acdbridge lacks write class originate: the "
        "supervisor desk's listen / whisper / barge (Originate to ChanSpy) are refused"
    ]
    bad = change(good(tmp_path), "supervisor/limits", {"break": "15 min"})
    _cfg, p = config.validate(bad, "t.toml", {})
    assert p.errors == ["t.toml: supervisor.limits.break: expected seconds in (0, 86400], got '15 min'"]
