"""The log side of C2SP tlog-witness: submit a checkpoint with a consistency proof, get cosignatures.

``WitnessClient`` keeps one HTTP/1.1 keep-alive connection to a witness
(standard library ``http.client``, so nothing beyond Python is needed) and
turns the witness's answers into results:

- 200: the cosignature lines (only those by the expected witness key that
  verify are kept; the spec says to ignore unknown keys);
- 409 with ``text/x.tlog.size``: the witness's size, so the caller can
  re-prove from it (``Conflict``);
- anything else: ``WitnessRefused`` with the status and the witness's text.
"""

from __future__ import annotations

import base64
import http.client
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from ..ledger.cosignature import Cosignature, CosignatureVerifier
from ..ledger.note import split_note

__all__ = ["WitnessClient", "Conflict", "WitnessRefused", "WitnessUnreachable", "format_request"]


class WitnessUnreachable(Exception):
    """The witness could not be reached or answered with something that is not HTTP."""


@dataclass
class WitnessRefused(Exception):
    """The witness refused the checkpoint (400, 403, 404, 422, 413, or a 409 that is not a size)."""

    status: int
    detail: str

    def __str__(self) -> str:
        return f"witness answered {self.status}: {self.detail.strip()[:300]}"


@dataclass
class Conflict(Exception):
    """409: the witness's latest cosigned size is not the old size sent (or the tree forked at that size)."""

    size: int

    def __str__(self) -> str:
        return f"witness has tree size {self.size}"


def format_request(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The add-checkpoint body: ``old <size>``, one base64 hash per line, an empty line, the signed checkpoint."""
    lines = [f"old {old_size}"] + [base64.b64encode(h).decode() for h in proof]
    return ("\n".join(lines) + "\n\n" + note).encode("utf-8")


class WitnessClient:
    """A keep-alive connection to one witness.

    Args:
        url: the witness's submission prefix, e.g. ``http://127.0.0.1:8080`` (``/add-checkpoint`` is appended).
        verifier: the witness's cosignature/v1 verifier key; only its valid cosignatures are returned.
        timeout: seconds per request.
    """

    def __init__(self, url: str, verifier: CosignatureVerifier | str, timeout: float = 10.0):
        parsed = urllib.parse.urlsplit(url.rstrip("/"))
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"witness URL {url!r} must be http:// or https:// with a host")
        self.url = url.rstrip("/")
        self._parsed = parsed
        self._path = (parsed.path or "") + "/add-checkpoint"
        self.verifier = verifier if isinstance(verifier, CosignatureVerifier) else CosignatureVerifier.parse(verifier)
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._parsed.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._parsed.hostname, self._parsed.port, timeout=self.timeout)
        return self._conn

    def set_timeout(self, seconds: float) -> None:
        """Seconds per request from now on, the open connection included (a caller bounding its whole run)."""
        self.timeout = seconds
        if self._conn is not None:
            self._conn.timeout = seconds
            if self._conn.sock is not None:
                self._conn.sock.settimeout(seconds)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _post(self, body: bytes) -> tuple[int, str, bytes]:
        for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile is retried once, fresh
            conn = self._connection()
            try:
                conn.request("POST", self._path, body=body, headers={"Content-Type": "text/plain; charset=utf-8"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, resp.getheader("Content-Type", ""), data
            except (http.client.HTTPException, OSError) as exc:
                self.close()
                if attempt == 2 or not isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
                    raise WitnessUnreachable(f"witness {self.url} unreachable: {exc}") from None
        raise AssertionError("unreachable")

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> list[str]:
        """Submit ``note`` with the consistency proof from ``old_size``.

        Returns:
            The witness's valid cosignature lines on the note's checkpoint (each ending in a newline).

        Raises:
            Conflict: 409 with the witness's size.
            WitnessRefused: any other refusal, or a 200 without a valid cosignature by the expected key.
            WitnessUnreachable: no HTTP answer.
        """
        status, ctype, data = self._post(format_request(old_size, proof, note))
        text = data.decode("utf-8", "replace")
        if status == 409 and ctype.split(";")[0].strip() == "text/x.tlog.size":
            size = text.strip()
            if size.isdigit():
                raise Conflict(int(size))
        if status != 200:
            raise WitnessRefused(status, text)
        body, _ = split_note(note)
        good = []
        for line in text.splitlines(keepends=True):
            if not line.strip():
                continue
            try:
                _, [sig] = split_note(body + "\n" + (line if line.endswith("\n") else line + "\n"))
                cs = Cosignature.from_line(sig)
            except Exception:  # noqa: BLE001 - lines from unknown keys or formats are ignored, per the spec
                continue
            if (cs.name, cs.key_id) == (self.verifier.name, self.verifier.key_id) and self.verifier.verify(body, cs.timestamp,
                                                                                                          cs.signature):
                good.append(cs.line)
        if not good:
            raise WitnessRefused(200, "the answer holds no valid cosignature by the witness's key")
        return good
