"""Sending a scheduled report by e-mail ([smtp], docs/reports.md). The standard library's smtplib,
run in a worker thread by the caller: a few mails a day need no asyncio client (and no extra
dependency); the thread's every step is bounded by `timeout`. STARTTLS (on by default) comes
before the login, so a password is never sent in clear; a server that does not offer it fails."""

from __future__ import annotations

import mimetypes
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path

from acdbridge.errors import AcdError
from acdbridge.settings.mailconf import SmtpConfig


class MailError(AcdError):
    """The mail could not be sent (refused, bad login, no STARTTLS, timeout): retried later."""

    code = "mail"
    exit_status = 1


def message(sender: str, to: Sequence[str], subject: str, body: str, files: Sequence[Path]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(to), subject
    msg.set_content(body)
    for path in files:
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        main, _, sub = kind.partition("/")
        msg.add_attachment(path.read_bytes(), maintype=main, subtype=sub, filename=path.name)
    return msg


def send(cfg: SmtpConfig, msg: EmailMessage) -> None:
    """Blocking: one SMTP conversation (call it in a thread). Every failure is a MailError."""
    try:
        with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s) as smtp:
            smtp.ehlo()
            if cfg.starttls:
                context = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
                smtp.starttls(context=context)
                smtp.ehlo()
            if cfg.username is not None and cfg.password is not None:
                smtp.login(cfg.username, cfg.password)
            smtp.send_message(msg)
    except smtplib.SMTPException as exc:
        raise MailError(f"SMTP {cfg.host}:{cfg.port}: {_describe(exc)}") from None
    except (OSError, ssl.SSLError) as exc:
        raise MailError(f"SMTP {cfg.host}:{cfg.port}: {exc.strerror or exc}") from None


def _describe(exc: smtplib.SMTPException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        raw = exc.smtp_error
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        return f"{type(exc).__name__} {exc.smtp_code} {text}"
    return f"{type(exc).__name__}: {exc}"
