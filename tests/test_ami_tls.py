"""AMI over TLS without a PBX: the [ami] tls keys, and check-config's session and the daemon's
link against loopback servers (a TLS one with a cert made by openssl, a plain one) that speak
just enough AMI: the banner and a Login reply."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from acdbridge import config
from acdbridge.adapters.ami import AmiClient, AmiTlsError
from acdbridge.lab.tlscert import SERVER_NAME, make_self_signed
from acdbridge.settings.amiconf import AmiConfig
from acdbridge.settings.amisession import AmiFailure, AmiSession


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("certs")
    make_self_signed(d / "pbx.crt", d / "pbx.key")
    make_self_signed(d / "other.crt", d / "other.key", name="someone-else")
    return {"cert": d / "pbx.crt", "key": d / "pbx.key", "other": d / "other.crt"}


def test_the_key_is_private_and_the_cert_names_the_lab(certs: dict[str, Path]) -> None:
    assert certs["key"].stat().st_mode & 0o777 == 0o600
    assert certs["cert"].stat().st_mode & 0o777 == 0o644
    ssl.create_default_context(cafile=str(certs["cert"]))  # loads as a CA


async def _ami(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The banner, then Success to every action with its ActionID."""
    try:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        while True:
            frame = (await reader.readuntil(b"\r\n\r\n")).decode()
            action_id = next(
                (x.split(": ", 1)[1] for x in frame.split("\r\n") if x.startswith("ActionID")), ""
            )
            writer.write(f"Response: Success\r\nActionID: {action_id}\r\nMessage: ok\r\n\r\n".encode())
    except (asyncio.IncompleteReadError, OSError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def serve(certs: dict[str, Path], tls: bool) -> AsyncIterator[int]:
    """A loopback AMI server, TLS (with the pbx cert) or plain; yields its port."""
    ctx = None
    if tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(certs["cert"], certs["key"])
    srv = await asyncio.start_server(_ami, "127.0.0.1", 0, ssl=ctx)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()


def cfg(port: int, **tls: object) -> AmiConfig:
    # a wide timeout: a loopback handshake takes milliseconds, but the machine may be busy; only
    # the plain-to-TLS case waits it out (tls_server=True, tls=False: a shorter one, 1.5 s)
    timeout = 1.5 if tls.get("tls") is None else 10.0
    return replace(AmiConfig(port=port, secret="s", action_timeout_s=timeout), **tls)  # type: ignore[arg-type]


def login(certs: dict[str, Path], tls_server: bool, **tls: object) -> str:
    """check-config's login against the server: "ok" or the failure's text."""

    async def go() -> str:
        async with serve(certs, tls_server) as port:
            try:
                session = await AmiSession.login(cfg(port, **tls))
            except AmiFailure as exc:
                return str(exc)
            session.close()
            return "ok"

    return asyncio.run(go())


def test_check_config_logs_in_over_tls(certs: dict[str, Path]) -> None:
    assert login(certs, True, tls=True, tls_ca=certs["cert"]) == "ok"
    assert login(certs, True, tls=True, tls_ca=certs["cert"], tls_server_name=SERVER_NAME) == "ok"
    assert login(certs, True, tls=True, tls_verify=False) == "ok"


def test_an_untrusted_certificate_is_named(certs: dict[str, Path]) -> None:
    said = login(certs, True, tls=True, tls_ca=certs["other"])
    assert said.startswith("TLS: the PBX's certificate at 127.0.0.1:") and "is not trusted" in said, said
    assert f"ami.tls_ca = {certs['other']}" in said and "for the name '127.0.0.1'" in said, said
    wrong_name = login(certs, True, tls=True, tls_ca=certs["cert"], tls_server_name="pbx.example")
    assert "not trusted" in wrong_name and "'pbx.example'" in wrong_name, wrong_name
    system = login(certs, True, tls=True)
    assert "the system's CAs (set ami.tls_ca)" in system, system


def test_tls_to_a_plain_port_and_plain_to_a_tls_port_are_named(certs: dict[str, Path]) -> None:
    said = login(certs, False, tls=True, tls_ca=certs["cert"])
    assert "does not speak TLS" in said and "a plain-TCP AMI port?" in said, said
    plain = login(certs, True)
    assert "no banner within 1.5 s (a TLS port? then set ami.tls = true)" in plain, plain


def test_the_daemons_link_names_a_failed_handshake(certs: dict[str, Path]) -> None:
    async def connect(tls_server: bool, **tls: object) -> str:
        async with serve(certs, tls_server) as port:
            client = AmiClient(cfg(port, **tls), on_message=lambda _m, _t: None)
            with pytest.raises(AmiTlsError) as err:
                await client._session(asyncio.Event())
            return str(err.value)

    untrusted = asyncio.run(connect(True, tls=True, tls_ca=certs["other"]))
    assert "is not trusted" in untrusted and "ami.tls_ca" in untrusted, untrusted
    assert "does not speak TLS" in asyncio.run(connect(False, tls=True, tls_ca=certs["cert"]))


def check(ami: dict[str, object]) -> tuple[list[str], list[str]]:
    _cfg, p = config.validate({"ami": {"secret": "s", **ami}}, "t.toml", {})
    return p.errors, p.warnings


def test_the_tls_keys(certs: dict[str, Path], tmp_path: Path) -> None:
    parsed, p = config.validate(
        {"ami": {"secret": "s", "tls": True, "tls_ca": str(certs["cert"]), "tls_server_name": "pbx"}},
        "t.toml",
        {},
    )
    assert not p.errors and parsed.ami.tls and parsed.ami.tls_ca == certs["cert"]
    assert parsed.ami.tls_server_name == "pbx" and parsed.ami.tls_verify
    assert check({"tls_ca": str(certs["cert"])})[0] == ["t.toml: ami.tls_ca: given but ami.tls is not true"]
    assert check({"tls": True, "tls_ca": str(tmp_path / "nope.pem")})[0] == [
        f"t.toml: ami.tls_ca: no such file: {tmp_path / 'nope.pem'} (a PEM CA or the PBX's own certificate)"
    ]
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert check({"tls": True, "tls_ca": str(junk)})[0] == [
        f"t.toml: ami.tls_ca: {junk} is not readable PEM certificates"
    ]
    errors, warnings = check({"tls": True, "tls_verify": False})
    assert (
        errors == [] and "ami.tls_verify: warning: false: the PBX's certificate is not checked" in warnings[0]
    )
    assert check({"tls": "yes"})[0] == ["t.toml: ami.tls: expected bool, got a string 'yes'"]
