"""Passwords in URLs (``storage.url``, ``tracking.uri``) never reach a console, a log or a file.

``mask_url`` shows a URL with its password as ``***``; ``scrub`` masks the password of any
URL in a text, and any password ``remember``-ed from the URLs dnc opens (a database driver's
error message may quote it alone). ``SecretFilter`` scrubs every log record of the handlers it
is added to (dnc's job logging and Hydra's own: ``conf/hydra/``).
"""

from __future__ import annotations

import logging
import re
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
    """Keep the password of ``url`` (if any, of 4 characters or more) so that ``scrub``
    removes it from any text."""
    secret = password(url) if isinstance(url, str) else None
    if secret and len(secret) >= 4:  # shorter ones would mask letters all over the logs
        with _lock:
            _secrets.update({secret, quote(secret, safe="")})


_IN_URL = re.compile(r"([a-zA-Z][\w+.-]*\\?://[^\s:/@\\]+\\?:)([^\s@/]+)(@)")  # \: as Hydra shows


def scrub(text: str) -> str:
    """``text`` with the password of every URL in it, and every remembered password, replaced
    by ``***``."""
    text = _IN_URL.sub(rf"\g<1>{MASK}\g<3>", text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


class SecretFilter(logging.Filter):
    """A logging filter that ``scrub``s records (message, arguments and traceback); dnc's job
    logging (console and ``dnc.log``) and Hydra's own logging use it (``conf/hydra/``)."""

    def filter(self, record: logging.LogRecord) -> bool:
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
