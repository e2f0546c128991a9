"""Notifications of scheduled runs: a webhook per schedule (:mod:`.webhook`) and e-mail (:mod:`.email`).

Both are headless (no Jupyter imports) and never put a secret (a webhook token, the SMTP
password) in what they return, raise or log.
"""

from __future__ import annotations

from .email import SmtpSettings, send_email
from .webhook import WebhookResult, deliver_webhook

__all__ = ["SmtpSettings", "WebhookResult", "deliver_webhook", "send_email"]
