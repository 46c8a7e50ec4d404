"""Helpers for the OTLP receiver and gateway tests: a log with the test causal LM registered, and real processes on
loopback (``glasslog serve``, ``glasslog gateway``, ``transformers serve``)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

MODEL_NAME = "glasslog-test-causal-lm"
MODEL_VERSION = "seed-0"


def need_llm_stack() -> None:
    """Skip (saying why) where torch, transformers or model-signing are not installed."""
    for mod in ("torch", "transformers", "model_signing"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed (the test model needs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def glasslog_command() -> list[str]:
    script = Path(sys.executable).parent / "glasslog"
    if script.is_file():
        return [str(script)]
    found = shutil.which("glasslog")
    return [found] if found else [sys.executable, "-c", "from glasslog.cli import main; main()"]


def wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                r.read()
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout} s:\n{log.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def process(args: list[str], ready_path: str, log: Path, timeout: float = 60, env: dict | None = None):
    """Run ``args`` with ``--port`` on a free port until the block ends; yields the base URL."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([*args, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + ready_path, proc, timeout, log)
        yield base
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@dataclass
class TestLog:
    data_dir: Path
    model_dir: Path
    fingerprint: str
    keys: dict[str, str]


def make_log(root: Path, model_dir: Path, deployments: dict[str, str | tuple[str, str]]) -> TestLog:
    """A log with the test model registered, ``deployments`` (name -> visibility) declared, an operator key bound to
    each, an unbound operator key (``"operator"``) and a developer, a researcher and a supervisor key."""
    from glasslog.access import KeyStore
    from glasslog.demo.generative import register_model_dir
    from glasslog.ledger import Ledger
    from glasslog.registry import Deployments

    lg = Ledger.create(root, "test.example/ingest")
    try:
        fp = register_model_dir(lg, model_dir, name=MODEL_NAME, version=MODEL_VERSION)
        keys = {}
        for name, visibility in deployments.items():  # a visibility, or (visibility, embeddings setting)
            visibility, embeddings = (visibility, "skip") if isinstance(visibility, str) else visibility
            Deployments(lg).declare(name, visibility, f"test deployment {name}", embeddings)
            keys[name] = KeyStore(lg).create("operator", f"app of {name}", [name])[1]
        keys["operator"] = KeyStore(lg).create("operator", "operations")[1]
        keys["developer"] = KeyStore(lg).create("developer", "a developer")[1]
        keys["researcher"] = KeyStore(lg).create("researcher", "a research institute")[1]
        keys["supervisor"] = KeyStore(lg).create("supervisor", "the supervisory authority")[1]
    finally:
        lg.close()
    return TestLog(root, model_dir, fp, keys)


def build_test_model(root: Path) -> Path:
    from glasslog.demo.testmodels import build_causal_lm

    return build_causal_lm(root / "test-causal-lm", seed=0)
