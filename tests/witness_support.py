"""Helpers for the witness tests: in-memory Merkle trees signed with a log key, and a real witness process."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from glasslog.ledger import merkle
from glasslog.ledger.note import Checkpoint, Signer, sign_note


class MemTree:
    """A Merkle tree of leaf hashes kept in memory, answering stored-hash reads for proof plans."""

    def __init__(self, entries: list[bytes] = ()):
        self.leaves = [merkle.leaf_hash(e) for e in entries]

    def append(self, *entries: bytes) -> MemTree:
        self.leaves.extend(merkle.leaf_hash(e) for e in entries)
        return self

    def copy(self) -> MemTree:
        t = MemTree()
        t.leaves = list(self.leaves)
        return t

    def _subtree(self, level: int, index: int) -> bytes:
        return merkle.root_from_leaf_hashes(self.leaves[index << level : (index + 1) << level])

    def hashes(self, keys):
        return {(lv, ix): self._subtree(lv, ix) for lv, ix in keys}

    def root(self, n: int | None = None) -> bytes:
        return merkle.root_from_leaf_hashes(self.leaves[: len(self.leaves) if n is None else n])

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = len(self.leaves) if new is None else new
        return merkle.build_proof(merkle.consistency_proof_plan(old, new), self.hashes)

    def note(self, signer: Signer, n: int | None = None, origin: str | None = None) -> str:
        n = len(self.leaves) if n is None else n
        return sign_note(Checkpoint(origin or signer.name, n, self.root(n)).text(), signer)


def entries(start: int, end: int, tag: str = "a") -> list[bytes]:
    return [f'{{"i":{i},"t":"{tag}"}}'.encode() for i in range(start, end)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                r.read()
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


class WitnessProcess:
    """``python -m glasslog.witness serve`` on a free loopback port, as a real subprocess."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int | None = None) -> WitnessProcess:
        self.port = port or free_port()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "glasslog.witness", "serve", "--dir", str(self.dir),
                                      "--port", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        wait_http(self.url + "/", proc=self.proc)
        return self

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()


def post(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, str, str]:
    req = urllib.request.Request(url + "/add-checkpoint", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()
