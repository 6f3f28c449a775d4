"""The four Heartify emails, sent over SMTP with STARTTLS, or written to a private outbox in development.

Emails carry secrets (the verification link, the API key itself), so they are never logged. Without an
SMTP server configured they go to ``outbox_dir`` as ``.eml`` files with mode 0600 in a 0700 folder.
"""
from __future__ import annotations

import html
import logging
import os
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from .._fs import write_bytes

log = logging.getLogger("ecgcore.serve")

SUBJECTS = {
    "generate": "Heartify - API Key Generation Verification",
    "deactivate": "Heartify - API Key Deactivation Verification",
    "key": "Heartify - Your API Key",
    "deactivated": "Heartify - API Key Deactivated",
}


class MailError(RuntimeError):
    """The message could not be handed to the mail server (details are logged without the body)."""


def _page(title: str, body_html: str) -> str:
    return (f"<!doctype html><html><body style=\"font-family:sans-serif\"><h2>{html.escape(title)}</h2>"
            f"{body_html}<p style=\"color:#777\">Heartify API (ecgcore)</p></body></html>")


def verification_message(sender: str, to: str, action: str, link: str, ttl_s: int) -> EmailMessage:
    """The email with the single-use verification link (button "Verify Email" / "Confirm Deactivation")."""
    button = "Verify Email" if action == "generate" else "Confirm Deactivation"
    what = "generate an API key" if action == "generate" else "deactivate your API key"
    hours = max(1, round(ttl_s / 3600))
    text_body = (f"Someone asked to {what} for {to}.\nOpen this link to confirm ({hours} h, single use):\n{link}\n"
                 "If this was not you, ignore this email.\n")
    html_body = _page(SUBJECTS[action],
                      f"<p>Someone asked to {what} for {html.escape(to)}.</p>"
                      f"<p><a href=\"{html.escape(link, quote=True)}\" style=\"background:#c62828;color:#fff;"
                      f"padding:10px 18px;text-decoration:none;border-radius:4px\">{button}</a></p>"
                      f"<p>The link works once and expires in {hours} h. If this was not you, ignore this email.</p>")
    return _message(sender, to, SUBJECTS[action], text_body, html_body)


def key_message(sender: str, to: str, api_key: str) -> EmailMessage:
    """The only place the key is ever shown: the server keeps its hash, not the key."""
    text_body = (f"Your Heartify API key:\n\n{api_key}\n\nSend it in the x-api-key header. We store only a hash of it: "
                 "keep this email safe; a lost key cannot be recovered, only replaced.\n")
    html_body = _page(SUBJECTS["key"], f"<p>Your API key:</p><pre style=\"font-size:16px\">{html.escape(api_key)}</pre>"
                                       "<p>Send it in the <code>x-api-key</code> header. We store only a hash of it: a lost "
                                       "key cannot be recovered, only replaced.</p>")
    return _message(sender, to, SUBJECTS["key"], text_body, html_body)


def deactivated_message(sender: str, to: str) -> EmailMessage:
    text_body = "Your Heartify API key has been deactivated. You can request a new one at any time.\n"
    return _message(sender, to, SUBJECTS["deactivated"], text_body,
                    _page(SUBJECTS["deactivated"], "<p>Your API key has been deactivated.</p>"))


def _message(sender: str, to: str, subject: str, text_body: str, html_body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1] or "localhost")
    msg.set_content(text_body)
    msg.add_alternative(html_body, subtype="html")
    return msg


class SMTPMailer:
    """Submission over SMTP: STARTTLS (certificate verified against ``cafile`` or the system store), then login."""

    def __init__(self, host: str, port: int = 587, user: str = "", password: str = "", *, cafile: str = "",
                 starttls: bool = True, timeout: float = 20.0):
        self.host, self.port, self.user, self.password = host, port, user, password
        self.cafile, self.starttls, self.timeout = cafile, starttls, timeout

    def describe(self) -> str:
        return f"SMTP {self.host}:{self.port} ({'STARTTLS' if self.starttls else 'plain, no TLS'})"

    def send(self, msg: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if self.starttls:
                    ctx = ssl.create_default_context(cafile=self.cafile or None)
                    smtp.starttls(context=ctx)
                    smtp.ehlo()
                if self.user:
                    smtp.login(self.user, self.password)
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            # the subject is enough to tell which mail failed; the body holds secrets
            log.error("email %r to %s via %s:%s failed: %s", msg["Subject"], msg["To"], self.host, self.port,
                      type(exc).__name__ + (f": {exc}" if not isinstance(exc, smtplib.SMTPResponseException) else
                                            f": {exc.smtp_code}"))
            raise MailError(f"could not send email via {self.host}:{self.port}") from exc


class OutboxMailer:
    """Development mailer: each message becomes ``<outbox>/<time>-<subject>.eml``, readable by the owner only."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def describe(self) -> str:
        return f"outbox folder {self.folder} (no SMTP_HOST set; files are mode 0600)"

    def send(self, msg: EmailMessage) -> Path:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            os.chmod(self.folder, 0o700)
            stem = f"{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}-" + \
                   "".join(c if c.isalnum() else "-" for c in msg["Subject"].lower())[:60]
            return write_bytes(self.folder / f"{stem}.eml", msg.as_bytes(), mode=0o600)  # mails hold secrets
        except OSError as exc:
            log.error("email %r to %s: cannot write to outbox %s: %s", msg["Subject"], msg["To"], self.folder, exc)
            raise MailError(f"could not write to outbox {self.folder}") from exc


def make_mailer(settings):
    if settings.smtp_host:
        return SMTPMailer(settings.smtp_host, settings.smtp_port, settings.smtp_user, settings.smtp_password,
                          cafile=settings.smtp_cafile, starttls=settings.smtp_starttls)
    return OutboxMailer(settings.outbox_dir)
