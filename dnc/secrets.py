"""Passwords in URLs (``storage.url``, ``tracking.uri``) never reach a console, a log or a file.

``mask_url`` shows a URL with its password as ``***``; every URL dnc opens is also ``remember``-ed,
so that ``scrub`` can take its password out of any text (an error message from a database
driver, a log record: ``SecretFilter`` scrubs every record of the handlers it is added to).
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import quote, unquote, urlsplit

_secrets: set[str] = set()
_lock = threading.Lock()
MASK = "***"


def password(url: str) -> str | None:
    """The password of ``scheme://user:password@host/...`` (``None`` when it has none)."""
    try:
        value = urlsplit(url).password
    except ValueError:
        return None
    return unquote(value) if value else None


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for anything printed or written."""
    secret = password(url) if isinstance(url, str) else None
    if not secret:
        return url
    parts = urlsplit(url)
    user, _, _ = parts.netloc.rpartition("@")[0].partition(":")
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:{MASK}@{host}").geturl()


def remember(url: str | None) -> None:
    """Keep the password of ``url`` (if any) so that ``scrub`` removes it from any text."""
    secret = password(url) if isinstance(url, str) else None
    if secret:
        with _lock:
            _secrets.update({secret, quote(secret, safe="")})


def scrub(text: str) -> str:
    """``text`` with every remembered password replaced by ``***``."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


class SecretFilter(logging.Filter):
    """A logging filter that scrubs remembered passwords from records (message, arguments and
    traceback); ``conf/hydra/job_logging/dnc.yaml`` puts it on the console and the log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


__all__ = ["MASK", "SecretFilter", "mask_url", "password", "remember", "scrub"]
