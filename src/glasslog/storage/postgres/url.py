"""Database URLs fit for messages: the password removed."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["redact"]

_SECRET_PARAMS = frozenset({"password", "sslpassword"})


def redact(url: str) -> str:
    """``url`` without its password: ``postgresql://user:secret@host/db`` -> ``postgresql://user@host/db``.

    A password given as a query parameter (``?password=...``, ``sslpassword``)
    is removed too. Every other part is kept, so the result still says which
    server and database is meant. Never raises: a URL that cannot be parsed
    is replaced by a placeholder rather than echoed.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}@{hostport}" if user else hostport
        query = parts.query
        if query:
            kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() not in _SECRET_PARAMS]
            query = urlencode(kept, safe="/:")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<a database URL that cannot be parsed>"
