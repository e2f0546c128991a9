"""E-mail of scheduled runs' ends through a configured SMTP server (stdlib ``smtplib``, in a thread)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send: host, port, ``security`` (``none``, ``starttls`` or ``ssl``), login, sender."""

    host: str
    port: int = 25
    security: str = "none"
    username: str = ""
    password: str = field(default="", repr=False)
    sender: str = "swm-jupyter@localhost"
    timeout: float = 30.0


def _send(settings: SmtpSettings, recipients: list[str], subject: str, text: str) -> None:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message.set_content(text)
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.security == "ssl":
        smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=context)
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    with smtp:
        if settings.security == "starttls":
            smtp.starttls(context=context)
        if settings.username:
            smtp.login(settings.username, settings.password)
        smtp.send_message(message)


async def send_email(settings: SmtpSettings, recipients: list[str], subject: str, text: str) -> str:
    """Send one message to ``recipients``; return ``""`` when sent, else what went wrong.

    The error names the kind of failure and the server's answer code, never the password.
    """
    try:
        await asyncio.to_thread(_send, settings, recipients, subject, text)
    except smtplib.SMTPAuthenticationError as exc:
        return f"the SMTP server refused the login ({exc.smtp_code})"
    except smtplib.SMTPResponseException as exc:
        return f"the SMTP server refused the message ({exc.smtp_code})"
    except (smtplib.SMTPException, OSError) as exc:
        return f"the SMTP server {settings.host}:{settings.port} could not be used ({type(exc).__name__})"
    return ""
