"""Secrets of a storage URL kept out of every message, log and copy of a sweep:
`redact` replaces the password (as written and decoded) and the values of secret
query keys with `HIDDEN`, and `hide_in` does so for every URL a sweep file holds,
whatever its type (a mistyped `storage` is quoted by validation errors)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

HIDDEN = "***"
# user:password@ (the password up to the last @, the widest reading) and the query
# keys whose values are secret.
_PASSWORD = re.compile(r"//[^:/@]*:(?P<password>.*)@")
_SECRET_KEY = re.compile(r"pass|secret|token|key", re.IGNORECASE)


def storage_name(url: str) -> str:
    """A storage URL for messages: its password and secret query values hidden."""
    return redact(url, url)


def redact(text: str, url: str) -> str:
    """`text` with every secret of the storage `url` (its password, as written and
    decoded, and the values of query keys such as `password`) replaced by ***."""
    for secret in sorted(_secrets(url), key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    return text


def _secrets(url: str) -> set[str]:
    """The secrets of a storage URL, as each parser would read it (a mistyped URL
    too): the widest readings are hidden as well as the exact one."""
    found: set[str] = set()
    if url.startswith("sqlite"):  # a file: no credentials, and paths may hold @
        return found
    match = _PASSWORD.search(url)  # //user:password@, to the last @
    if match:
        found.add(match["password"])
    head, at, _ = url.rpartition("@")
    if at:  # user:password before the last @, after the last /
        found.add(head.rpartition("/")[2].partition(":")[2])
    try:
        parts = urlsplit(url)
        found.add(parts.password or "")
        query = parts.query
    except ValueError:  # not a URL urllib reads
        query = ""
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if _SECRET_KEY.search(key):
            found.add(value)
    try:
        found.add(make_url(url).password or "")  # what the database is sent
    except (ArgumentError, ValueError):
        pass
    found |= {unquote(secret) for secret in found}
    found |= {unquote_plus(secret) for secret in found}
    return {secret for secret in found if secret}


def hide_in(text: str, storage: Any) -> str:
    """`text` with the secrets of every string in `storage` hidden: the `storage`
    value of a sweep file as written, a URL or (mistyped) a list or mapping."""
    if isinstance(storage, str):
        return redact(text, storage)
    if isinstance(storage, dict):
        storage = [*storage.keys(), *storage.values()]
    if isinstance(storage, (list, tuple)):
        for value in storage:
            text = hide_in(text, value)
    return text
