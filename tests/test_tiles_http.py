"""A third-party tlog-tiles client verifies the log over real HTTP.

The issue's requirement: *a third-party tlog-tiles client must be able to
verify inclusion of any entry and consistency between two checkpoints from
these endpoints and the verifier key alone.*

``glasslog serve`` runs in a subprocess on a free port. The client is
tests/go/tilesclient, our own Go program built on Go's checksum-database code
(``golang.org/x/mod/sumdb/note`` and ``sumdb/tlog``): given only the base URL
and the verifier key it fetches ``/checkpoint``, ``/tile/<L>/<N>[.p/<W>]`` and
``/tile/entries/<N>[.p/<W>]`` and nothing else (no ``/v1`` endpoint, no
glasslog code). It

1. opens the checkpoint with ``note.Open``, recomputes its root from tiles,
   and proves the first entry, the last one, one in the partial level-0 tile
   and random ones (``tlog.ProveRecord`` / ``tlog.CheckRecord``), reading their
   bytes from entry bundles and checking ``tlog.RecordHash`` of every entry of
   each bundle against the level-0 tile;
2. keeps that checkpoint in a state file; the test then appends decisions
   through glasslog's Python API directly on the data directory while the
   server runs; the client fetches the new checkpoint and proves it consistent
   with the old one (``tlog.ProveTree`` / ``tlog.CheckTree`` from tiles).

Every value the client derived (roots, leaf hashes, entry bytes, inclusion and
consistency proofs) must equal glasslog's own, byte for byte. Then the
tampered cases: a wrong verifier key, a forked log signed with the right key
(split view at the same size, an inconsistent larger tree, a rollback), and a
man-in-the-middle proxy that alters an entry bundle, a hash tile or the
checkpoint. Each must be rejected for the right reason.

Without Go the client tests are skipped (as in tests/test_go_interop.py;
``.ci/go-deps.sh`` installs Go and x/mod from Debian); the HTTP header and
404 checks run from Python regardless.

Log shape: the demo (602 entries), then a public-service deployment and
decisions in batches up to 700 entries (level-0 tiles 0, 1 full, 2 partial of
width 188; level-1 tile 0 partial of width 2), then, while the server runs, to
850 and 1000 (level-0 tile 3 partial of width 232, level-1 of width 3).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from glasslog.demo.run import run_demo
from glasslog.ledger import Ledger, PrivateValue, commit, utc_now
from glasslog.ledger.tiles import encode_entry_bundle, tile_path
from glasslog.registry import Deployments

from .goenv import build_go_program

GO_SRC = Path(__file__).resolve().parent / "go" / "tilesclient"
DEFAULT_XMOD = Path("/usr/share/gocode/src/golang.org/x/mod")
ORIGIN = "bank.example/credit-decisions"
PUBLIC_DEPLOYMENT = ORIGIN + "/benefits-pilot"
FIRST_SIZE, MIDDLE_SIZE, FINAL_SIZE = 700, 850, 1000
FORK_SIZE, FORK_GROWN_SIZE = 700, 800


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ------------------------------------------------------- building the client
# The same offline build as tests/test_go_interop.py: module mode with a
# replace directive pointing at the local x/mod source, else GOPATH mode.


@pytest.fixture(scope="session")
def tiles_client(tmp_path_factory) -> Path:
    """Build tests/go/tilesclient once per session; skip when Go or x/mod is absent."""
    return build_go_program(GO_SRC, tmp_path_factory.mktemp("tilesclient-build"))


# ------------------------------------------------------------------ the logs


def _decisions(model: str, count: int, tag: str, flip: bool = False) -> tuple[list[dict], list[PrivateValue]]:
    """``count`` valid public-service decision entries, inputs committed (values kept beside the log)."""
    entries, private = [], []
    for k in range(count):
        features = {"applicant_income": 1200 + 37 * k, "household_size": 1 + k % 6, "batch": tag}
        commitment, salt, value = commit(features)
        p = round((k * 7919 % 1000) / 1000, 3)
        label = int(p >= 0.5) ^ int(flip)
        entries.append({"type": "decision", "v": 1, "model": model, "deployment": PUBLIC_DEPLOYMENT,
                        "time": utc_now(), "input": commitment,
                        "output": {"label": label, "proba": [round(1 - p, 3), p]}})
        private.append(PrivateValue(k, "input", commitment, salt, value))
    return entries, private


def grow(data_dir: Path, target: int, tag: str, flip: bool = False) -> int:
    """Append decisions to the log in ``data_dir`` (Python API, own connection) until it has ``target`` entries."""
    with Ledger.open(data_dir) as ledger:
        model = next(e["model"] for _, e in ledger.entries_of_type("model"))
        need = target - ledger.size
        assert need > 0, (ledger.size, target)
        entries, private = _decisions(model, need, tag, flip)
        result = ledger.append(entries, private)
        assert result.tree_size == target
        return result.tree_size


@dataclass
class Logs:
    main: Path
    fork: Path        # a copy of main at the demo's end, the same signer key, then a different history
    other: Path       # another log with the same origin and its own key
    verifier_key: str


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Logs:
    tmp = tmp_path_factory.mktemp("tiles-http")
    main = tmp / "main"
    summary = run_demo(main)
    assert summary.ok and summary.tree_size > 512, summary.tree_size
    fork = tmp / "fork"
    shutil.copytree(main, fork)  # log.key keeps its 0600 mode (copy2)
    for d in (main, fork):
        with Ledger.open(d) as ledger:
            Deployments(ledger).declare(PUBLIC_DEPLOYMENT, "public-service", "Benefit eligibility pre-screening pilot.")
    grow(main, FIRST_SIZE, "main-1")
    grow(fork, FORK_SIZE, "fork-1", flip=True)  # the same size, other outputs
    other = tmp / "other"
    with Ledger.create(other, ORIGIN) as impostor:
        impostor.append(_decisions("sha256:" + "ab" * 32, 3, "other")[0])
    return Logs(main, fork, other, (main / "log.vkey").read_text().strip())


# ---------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _glasslog_command() -> list[str]:
    script = Path(sys.executable).parent / "glasslog"
    if script.is_file():
        return [str(script)]
    found = shutil.which("glasslog")
    if found:
        return [found]
    return [sys.executable, "-c", "from glasslog.cli import main; main()"]


@contextmanager
def serve(data_dir: Path, log_dir: Path):
    """Run ``glasslog serve`` on a free port until the block ends; yields the base URL."""
    last_error = ""
    for attempt in range(3):  # another process may take the free port before the server binds it
        port = _free_port()
        log_path = log_dir / f"serve-{data_dir.name}-{port}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([*_glasslog_command(), "serve", "--data-dir", str(data_dir), "--port", str(port)],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            ready = False
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(base + "/checkpoint", timeout=2) as r:
                        ready = r.status == 200
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if ready:
                    break
                time.sleep(0.1)
            if ready:
                yield base
                return
            last_error = log_path.read_text(errors="replace")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        if "address already in use" not in last_error.lower():
            break
    pytest.fail(f"glasslog serve did not become ready:\n{last_error[-3000:]}")


@pytest.fixture(scope="module")
def main_server(logs, tmp_path_factory):
    with serve(logs.main, tmp_path_factory.mktemp("serve-logs")) as base:
        yield base


# --------------------------------------------------- a man-in-the-middle proxy


class TamperingProxy:
    """Forwards GETs to the real server and lets a test rewrite response bodies."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.mutate = lambda path, body: body
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                try:
                    with urllib.request.urlopen(proxy.upstream + self.path, timeout=30) as r:
                        status, ctype, body = r.status, r.headers.get("Content-Type"), r.read()
                except urllib.error.HTTPError as e:
                    status, ctype, body = e.code, e.headers.get("Content-Type"), e.read()
                if status == 200:
                    body = proxy.mutate(self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", ctype or "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _flip(body: bytes, pos: int, bit: int = 0) -> bytes:
    out = bytearray(body)
    out[pos] ^= 1 << bit
    return bytes(out)


def _edit_entry(bundle: bytes, k: int) -> bytes:
    """Change one character inside entry k of an entry bundle, keeping every length."""
    pos = 0
    for _ in range(k):
        pos += 2 + int.from_bytes(bundle[pos:pos + 2], "big")
    n = int.from_bytes(bundle[pos:pos + 2], "big")
    entry = bundle[pos + 2:pos + 2 + n]
    i = entry.index(b'"time":"') + len(b'"time":"') + 3  # a digit of the year: still valid JSON
    edited = entry[:i] + (b"8" if entry[i:i + 1] != b"8" else b"7") + entry[i + 1:]
    return bundle[:pos + 2] + edited + bundle[pos + 2 + n:]


def _drop_last_entry(bundle: bytes) -> bytes:
    pos, starts = 0, []
    while pos < len(bundle):
        starts.append(pos)
        pos += 2 + int.from_bytes(bundle[pos:pos + 2], "big")
    return bundle[:starts[-1]]


# -------------------------------------------------------- running the client


@dataclass
class Run:
    args: list[str]
    code: int
    report: dict
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0 and self.report.get("ok") is True

    @property
    def error(self) -> str:
        return self.report.get("error", "")


def run_client(client: Path, base: str, key: str, state: Path | None = None, indexes: str = "first,last,partial",
               seed: int = 1) -> Run:
    args = ["-base", base, "-key", key, "-indexes", indexes, "-seed", str(seed)]
    if state is not None:
        args += ["-state", str(state)]
    proc = subprocess.run([str(client), *args], check=False, capture_output=True, text=True, timeout=300)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"tilesclient wrote no JSON report (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return Run(args, proc.returncode, report, proc.stderr)


@dataclass
class Scenario:
    first: Run                 # no state, at FIRST_SIZE
    second: Run                # state from `first`, after the log grew to FINAL_SIZE while the server ran
    first_state: str           # the state file's content after `first`
    final_state: str           # ... after `second`
    rejected: dict[str, Run]   # tampered cases
    state_after_rejections: dict[str, str]
    fork_alone: Run


def _ok(run: Run, what: str) -> Run:
    assert run.ok, f"{what}: the client rejected genuine data (exit {run.code}): {run.error}\n{run.stderr[-2000:]}"
    return run


@pytest.fixture(scope="module")
def scenario(tiles_client, logs, main_server, tmp_path_factory) -> Scenario:
    tmp = tmp_path_factory.mktemp("tilesclient-runs")
    key = logs.verifier_key
    state = tmp / "state.json"

    # 1. A first checkpoint, and inclusion of chosen entries.
    first = _ok(run_client(tiles_client, main_server, key, state, "first,last,partial,random:6,5,300", seed=7), "first run")
    first_state = state.read_text()

    # 2. The operator appends while the server runs (glasslog's Python API, straight on the data directory).
    grow(logs.main, MIDDLE_SIZE, "main-2")
    grow(logs.main, FINAL_SIZE, "main-3")

    # 3. The client comes back: consistency with what it saw, and every entry of the new tree.
    second = _ok(run_client(tiles_client, main_server, key, state, "all"), "second run")
    final_state = state.read_text()

    rejected: dict[str, Run] = {}
    after: dict[str, str] = {}

    def expect_rejection(name: str, run: Run, state_file: Path | None = None) -> None:
        rejected[name] = run
        if state_file is not None:
            after[name] = state_file.read_text()

    def state_copy(name: str, content: str) -> Path:
        p = tmp / f"state-{name.replace('/', '-')}.json"
        p.write_text(content)
        return p

    # 4. Wrong verifier keys.
    other_key = (logs.other / "log.vkey").read_text().strip()
    expect_rejection("key/impostor-same-origin", run_client(tiles_client, main_server, other_key))
    renamed = _renamed_key(key, "other.example/log")  # the log's public key under another name
    expect_rejection("key/other-name", run_client(tiles_client, main_server, renamed))
    expect_rejection("key/malformed", run_client(tiles_client, main_server, key[:-4]))
    s = state_copy("key-impostor-with-state", final_state)
    expect_rejection("key/impostor-with-state", run_client(tiles_client, main_server, other_key, s), s)

    # 5. A fork signed with the log's own key: the client's memory of an earlier checkpoint exposes it.
    with serve(logs.fork, tmp) as fork:
        s = state_copy("fork-split-view", first_state)
        expect_rejection("fork/split-view", run_client(tiles_client, fork, key, s), s)
        grow(logs.fork, FORK_GROWN_SIZE, "fork-2", flip=True)
        s = state_copy("fork-inconsistent", first_state)
        expect_rejection("fork/inconsistent", run_client(tiles_client, fork, key, s), s)
        s = state_copy("fork-rollback", final_state)
        expect_rejection("fork/rollback", run_client(tiles_client, fork, key, s), s)
        fork_alone = run_client(tiles_client, fork, key, None, "first,last,partial")

    # 6. A man in the middle alters what the real server sends.
    proxy = TamperingProxy(main_server)
    try:
        _ok(run_client(tiles_client, proxy.base, key, None, "first,5,last,partial"), "through the untouched proxy")
        cases = {
            "mitm/entry-edited": lambda p, b: _edit_entry(b, 5) if p == "/tile/entries/000" else b,
            "mitm/entry-dropped": lambda p, b: _drop_last_entry(b) if p.startswith("/tile/entries/003") else b,
            "mitm/level0-tile-bit": lambda p, b: _flip(b, 32 * 5 + 9, 3) if p == "/tile/0/000" else b,
            "mitm/level0-partial-tile-bit": lambda p, b: _flip(b, 32 * 100 + 1) if p.startswith("/tile/0/003.p/") else b,
            "mitm/level1-tile-bit": lambda p, b: _flip(b, 40) if p.startswith("/tile/1/") else b,
            "mitm/checkpoint-signature-bit": lambda p, b: _sig_bit(b) if p == "/checkpoint" else b,
            "mitm/checkpoint-size-edited": lambda p, b: b.replace(b"\n%d\n" % FINAL_SIZE, b"\n%d\n" % (FINAL_SIZE + 1), 1)
            if p == "/checkpoint" else b,
        }
        for name, mutate in cases.items():
            proxy.mutate = mutate
            expect_rejection(name, run_client(tiles_client, proxy.base, key, None, "first,5,last,partial"))
        proxy.mutate = lambda p, b: b
    finally:
        proxy.close()
    return Scenario(first, second, first_state, final_state, rejected, after, fork_alone)


def _renamed_key(vkey: str, name: str) -> str:
    """A well-formed verifier key with the same Ed25519 public key and another name (C2SP signed-note key hash)."""
    key_b64 = vkey.split("+", 2)[2]  # name+keyhash+base64; the base64 may hold "+"
    key_hash = hashlib.sha256(name.encode() + b"\n" + base64.b64decode(key_b64)).digest()[:4].hex()
    return f"{name}+{key_hash}+{key_b64}"


def _sig_bit(note: bytes) -> bytes:
    text, sig_line = note.rstrip(b"\n").rsplit(b"\n", 1)
    prefix, sig = sig_line.rsplit(b" ", 1)
    raw = bytearray(base64.b64decode(sig))
    raw[20] ^= 0x08  # inside the Ed25519 signature, after the 4-byte key hash
    return text + b"\n" + prefix + b" " + base64.b64encode(bytes(raw)) + b"\n"


# ------------------------------------------------------------------ checking


def _check_inclusions(run: Run, ledger: Ledger, n: int) -> list[int]:
    problems, indexes = [], []
    for inc in run.report["inclusion"]:
        i = inc["index"]
        indexes.append(i)
        if inc["leaf_hash"] != b64(ledger.leaf_hash(i)):
            problems.append(f"{i}: leaf hash from tiles differs")
        if inc["proof"] != [b64(h) for h in ledger.inclusion_proof(i, n)]:
            problems.append(f"{i}: tile-derived inclusion proof differs from glasslog's")
        if base64.b64decode(inc["entry"]) != ledger.entry(i):
            problems.append(f"{i}: entry bytes from the bundle differ")
        w = min(256, n - i // 256 * 256)
        if inc["bundle"] != "/" + tile_path(None, i // 256, w):
            problems.append(f"{i}: read from {inc['bundle']}")
    assert not problems, "\n".join(problems[:20])
    return indexes


def test_client_verifies_checkpoint_and_inclusion_from_tiles_alone(scenario, logs):
    run = scenario.first
    with Ledger.open(logs.main) as ledger:
        n = FIRST_SIZE
        cp = run.report["checkpoint"]
        assert (cp["origin"], cp["tree_size"]) == (ORIGIN, n)
        assert cp["root"] == b64(ledger.root(n)) == run.report["tree_hash_from_tiles"]
        assert cp["note"] == ledger.checkpoint(n)
        indexes = _check_inclusions(run, ledger, n)
    partial = n - n % 256 + (n % 256) // 2
    assert {0, n - 1, partial, 5, 300} <= set(indexes), indexes
    assert len(indexes) >= 8, indexes  # plus random ones
    fetched = run.report["fetched"]
    assert all(p == "/checkpoint" or p.startswith("/tile/") for p in fetched), fetched
    # partial tiles at two levels, a partial entry bundle, full ones
    for path in ("/tile/0/002.p/188", "/tile/1/000.p/2", "/tile/entries/002.p/188", "/tile/0/000", "/tile/entries/000"):
        assert path in fetched, (path, fetched)
    bundles = {p for p in fetched if p.startswith("/tile/entries/")}
    assert run.report["bundle_entries_checked"] == sum(188 if ".p/" in p else 256 for p in bundles)
    assert json.loads(scenario.first_state)["checkpoint"] == cp["note"]


def test_client_verifies_consistency_after_appends_while_serving(scenario, logs):
    run = scenario.second
    with Ledger.open(logs.main) as ledger:
        n, m = FINAL_SIZE, FIRST_SIZE
        assert ledger.signed_size() >= n
        cp = run.report["checkpoint"]
        assert cp["tree_size"] == n and cp["note"] == ledger.checkpoint(n)
        assert run.report["previous"]["tree_size"] == m
        c = run.report["consistency"]
        assert (c["old_size"], c["new_size"]) == (m, n)
        assert c["old_root"] == b64(ledger.root(m)) and c["new_root"] == b64(ledger.root(n))
        assert c["proof"] == [b64(h) for h in ledger.consistency_proof(m, n)]
        assert c["proof"], "a consistency proof between different sizes is not empty"
        indexes = _check_inclusions(run, ledger, n)
    assert indexes == list(range(n)), "every entry of the grown tree, proven and read from its bundle"
    assert run.report["bundle_entries_checked"] == n
    for path in ("/tile/0/003.p/232", "/tile/1/000.p/3", "/tile/entries/003.p/232", "/tile/0/002", "/tile/entries/002"):
        assert path in run.report["fetched"], path
    assert json.loads(scenario.final_state)["checkpoint"] == cp["note"]


REJECTIONS = {
    # name: (exit code, substrings one of which the error must contain)
    "key/impostor-same-origin": (1, ("note.Open",)),
    "key/other-name": (1, ("note.Open",)),
    "key/malformed": (2, ("note.NewVerifier",)),
    "key/impostor-with-state": (1, ("previous checkpoint in state file: note.Open",)),
    "fork/split-view": (1, ("split view: tree size 700",)),
    "fork/inconsistent": (1, ("consistency from tree size 700 to 800: tlog.CheckTree",)),
    "fork/rollback": (1, ("rollback: the server's checkpoint has tree size 800, smaller than the 1000",)),
    "mitm/entry-edited": (1, ("entry 5: tlog.RecordHash of its bytes",)),
    "mitm/entry-dropped": (1, ("entry bundle holds 231 entries, want 232",)),
    # x/mod v0.7.0's TileHashReader may pass an unauthenticated full level-0 tile (see main.go);
    # the client's own tlog.CheckRecord against the signed root then rejects it.
    "mitm/level0-tile-bit": (1, ("downloaded inconsistent tile", "tlog.CheckRecord")),
    "mitm/level0-partial-tile-bit": (1, ("downloaded inconsistent tile",)),
    "mitm/level1-tile-bit": (1, ("downloaded inconsistent tile",)),
    "mitm/checkpoint-signature-bit": (1, ("note.Open",)),
    "mitm/checkpoint-size-edited": (1, ("note.Open",)),
}


@pytest.mark.parametrize("name", sorted(REJECTIONS))
def test_client_rejects_tampering(scenario, name):
    run = scenario.rejected[name]
    code, reasons = REJECTIONS[name]
    assert run.report["ok"] is False, f"{name}: ACCEPTED"
    assert run.code == code, (name, run.code, run.error)
    assert any(r in run.error for r in reasons), f"{name}: rejected for an unexpected reason: {run.error!r}"
    if name in scenario.state_after_rejections:  # a rejected checkpoint never replaces the remembered one
        before = scenario.first_state if name in ("fork/split-view", "fork/inconsistent") else scenario.final_state
        assert scenario.state_after_rejections[name] == before


def test_every_tampered_case_ran(scenario):
    assert set(scenario.rejected) == set(REJECTIONS)


def test_a_fork_alone_verifies_which_is_why_clients_keep_state(scenario):
    # Signed with the log's key and internally consistent: only a client that remembers an
    # earlier checkpoint (or a witness) can tell it is a fork; see the fork/* rejections.
    run = scenario.fork_alone
    assert run.ok, run.error
    assert run.report["checkpoint"]["tree_size"] == FORK_GROWN_SIZE


# ------------------------------------------------- HTTP details, from Python


def _get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def _max_age(cache_control: str) -> int:
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name == "max-age":
            return int(value)
    raise AssertionError(f"no max-age in {cache_control!r}")


def _tree_size(logs) -> int:
    with Ledger.open(logs.main) as ledger:
        n = ledger.signed_size()
    assert n > 256 and 0 < n % 256 < 255 and 0 < (n >> 8) < 255, n
    return n


def test_checkpoint_is_text_plain_utf8_and_briefly_cacheable(main_server, logs):
    status, headers, body = _get(main_server + "/checkpoint")
    assert status == 200
    assert headers["content-type"] == "text/plain; charset=utf-8"
    cc = headers["cache-control"]
    assert "immutable" not in cc and _max_age(cc) <= 10, cc
    with Ledger.open(logs.main) as ledger:
        assert body.decode("utf-8") == ledger.checkpoint()


def test_tiles_and_bundles_are_octet_stream_and_immutable(main_server, logs):
    n = _tree_size(logs)
    with Ledger.open(logs.main) as ledger:
        expected = {
            tile_path(0, 0): ledger.tile(0, 0),
            tile_path(0, n // 256, n % 256): ledger.tile(0, n // 256, n % 256),
            tile_path(1, 0, n >> 8): ledger.tile(1, 0, n >> 8),
            tile_path(None, 0): encode_entry_bundle([ledger.entry(i) for i in range(256)]),
            tile_path(None, n // 256, n % 256): encode_entry_bundle([ledger.entry(i) for i in range(n - n % 256, n)]),
        }
    assert len(expected[tile_path(0, 0)]) == 8192
    for path, data in expected.items():
        for accept in ({}, {"Accept-Encoding": "gzip"}):
            status, headers, body = _get(f"{main_server}/{path}", accept)
            assert status == 200, (path, status, body[:200])
            assert headers["content-type"] == "application/octet-stream", (path, headers)
            cc = headers["cache-control"]
            assert "immutable" in cc and _max_age(cc) >= 86400, (path, cc)
            if headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            else:
                assert "content-encoding" not in headers or headers["content-encoding"] == "identity", headers
            assert body == data, path


def _assert_problem_404(base: str, path: str) -> None:
    status, headers, body = _get(f"{base}/{path}")
    assert status == 404, (path, status, body[:200])
    assert headers["content-type"] == "application/problem+json", (path, headers)
    assert "immutable" not in headers.get("cache-control", ""), (path, headers)
    problem = json.loads(body)
    assert problem["status"] == 404 and problem["title"] and problem["detail"], (path, problem)


def test_tiles_beyond_the_signed_tree_are_404_problems(main_server, logs):
    n = _tree_size(logs)
    last, w, w1 = n // 256, n % 256, n >> 8
    for path in (
        tile_path(0, last),               # the full tile does not exist yet
        tile_path(0, last, w + 1),        # wider than the signed tree
        tile_path(0, last + 1, 1),
        tile_path(0, 1000),
        tile_path(1, 0),
        tile_path(1, 0, w1 + 1),
        tile_path(1, 1, 1),
        tile_path(2, 0, 1),
        tile_path(63, 0, 1),
        tile_path(None, last),
        tile_path(None, last, w + 1),
        tile_path(None, last + 1, 1),
    ):
        _assert_problem_404(main_server, path)


def test_malformed_tile_paths_are_404_problems(main_server):
    for path in (
        "tile/0/0", "tile/0/00", "tile/0/0000", "tile/0/1000", "tile/0/x000/001", "tile/0/x1/000",
        "tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/300", "tile/0/000.p/07", "tile/0/000.p/",
        "tile/0/000.p", "tile/00/000", "tile/01/000", "tile/64/000", "tile/-1/000", "tile/a/000",
        "tile/8/0/000",                   # x/mod's path form, with the tile height
        "tile/data/000",                  # x/mod's name for entry tiles
        "tile/entries/0", "tile/entries/000.p/256", "tile/entries/x000/000", "tile/entry/000",
        "tile/0/000/", "tile/", "tile",
    ):
        _assert_problem_404(main_server, path)
