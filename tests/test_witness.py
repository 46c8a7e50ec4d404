"""The witness (C2SP tlog-witness) as a real server process on loopback.

Every HTTP test talks to ``python -m glasslog.witness serve`` started as a
subprocess on a free port. Logs are in-memory Merkle trees signed with real
log keys (``witness_support.MemTree``), so forks are easy to make: two copies
of one log that diverge after index k, both signed with the log's key.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
import urllib.request

import pytest

from glasslog.ledger.cosignature import CosignatureVerifier, verify_cosigned
from glasslog.ledger.note import generate_signer, sign_note
from glasslog.witness import Witness
from glasslog.witness.client import Conflict, WitnessClient, WitnessRefused, format_request

from .witness_support import MemTree, WitnessProcess, entries, post


@pytest.fixture(scope="module")
def witness(tmp_path_factory):
    d = tmp_path_factory.mktemp("witness")
    Witness.init(d, "witness.test/w1").close()
    proc = WitnessProcess(d).start()
    yield proc
    proc.stop()


def follow(witness: WitnessProcess, origin: str):
    signer = generate_signer(origin)
    w = Witness(witness.dir)
    w.add_log(origin, str(signer.verifier()))
    vkey = CosignatureVerifier.parse(w.verifier_key)
    w.close()
    return signer, vkey


def b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


def test_witness_runs_without_the_model_stack():
    code = ("import sys, glasslog.witness.app, glasslog.witness.cli, glasslog.witness.client, glasslog.witness.catchup, uvicorn; "
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'sklearn', 'scipy', 'pandas', 'fastapi', 'torch'}); "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_init_key_file_is_private_and_refuses_overwrite(tmp_path):
    Witness.init(tmp_path, "w.example").close()
    assert (tmp_path / "witness.key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError):
        Witness.init(tmp_path, "w.example")
    (tmp_path / "witness.key").chmod(0o644)
    with pytest.raises(ValueError, match="0644"):
        Witness(tmp_path)


def test_first_checkpoint_is_cosigned_and_verifies(witness):
    signer, vkey = follow(witness, "log.example/first")
    tree = MemTree(entries(0, 7))
    note = tree.note(signer)
    status, ctype, body = post(witness.url, format_request(0, [], note))
    assert status == 200, body
    assert body.startswith("\u2014 witness.test/w1 ") and body.endswith("\n")
    r = verify_cosigned(note + body, signer.verifier(), [vkey], 1)
    assert r.ok, r.problems
    assert r.witnesses[0].name == "witness.test/w1"
    info = json.loads(urllib.request.urlopen(witness.url + "/").read())
    assert {"origin": "log.example/first", "verifier_key": str(signer.verifier()), "tree_size": 7} in info["logs"]


def test_bad_input(witness):
    origin = "log.example/bad-input"
    signer, vkey = follow(witness, origin)
    tree = MemTree(entries(0, 5))
    note5 = tree.note(signer)

    # unknown origin
    stranger = generate_signer("log.example/unknown")
    assert post(witness.url, format_request(0, [], MemTree(entries(0, 3)).note(stranger)))[0] == 404
    # bad log signature: same name, another key; and a signature that does not verify
    impostor = generate_signer(origin)
    assert post(witness.url, format_request(0, [], tree.note(impostor)))[0] == 403
    text, sigs = note5.split("\n\n")
    flipped = text.replace("\n5\n", "\n6\n") + "\n\n" + sigs
    assert post(witness.url, format_request(0, [], flipped))[0] == 403
    # old > new
    assert post(witness.url, format_request(9, [], note5))[0] == 400
    # malformed size lines (signed by the real key: the parse must still refuse them)
    root = b64(tree.root())
    for size in ("05", "-5", "5 ", "+5", "５", ""):
        bad = sign_note(f"{origin}\n{size}\n{root}\n", signer)
        assert post(witness.url, format_request(0, [], bad))[0] == 400, size
    # malformed old lines and bodies
    for body in (b"old 05\n\n" + note5.encode(), b"old\n\n" + note5.encode(), b"old -1\n\n" + note5.encode(),
                 b"new 0\n\n" + note5.encode(), b"old 0\n" + note5.encode(), b"old 0\nnot base64!\n\n" + note5.encode(),
                 b"old 0\n" + b64(b"short").encode() + b"\n\n" + note5.encode(), b"\xff\xfe", b""):
        assert post(witness.url, body)[0] == 400, body[:30]
    # a proof when the old size is 0
    assert post(witness.url, format_request(0, [bytes(32)], note5))[0] == 422
    # first checkpoint: accepted
    status, _, cosig = post(witness.url, format_request(0, [], note5))
    assert status == 200
    # wrong old size: 409 with the witness's size as text/x.tlog.size
    for old in (0, 3, 4):
        status, ctype, body = post(witness.url, format_request(old, tree.proof(old, 5) if old else [], note5))
        assert (status, ctype.split(";")[0], body) == (409, "text/x.tlog.size", "5\n")
    tree.append(*entries(5, 13))
    note13 = tree.note(signer)
    proof = tree.proof(5)
    # proofs with an extra hash, a missing hash, a changed hash
    assert post(witness.url, format_request(5, [*proof, bytes(32)], note13))[0] == 422
    assert post(witness.url, format_request(5, proof[:-1], note13))[0] == 422
    assert post(witness.url, format_request(5, [proof[0][::-1], *proof[1:]], note13))[0] == 422
    # more than 63 proof lines
    assert post(witness.url, format_request(5, [bytes(32)] * 64, note13))[0] == 400
    # oversized bodies: declared, and padding that makes the body itself too large
    assert post(witness.url, b"old 5\n" + b"A" * 70000)[0] == 413
    # after all that, the witness is still at 5 and accepts the genuine proof
    status, _, body = post(witness.url, format_request(5, proof, note13))
    assert status == 200, body
    # the same checkpoint again: cosigned again; another root at the same size: 409
    assert post(witness.url, format_request(13, [], note13))[0] == 200
    other = MemTree(entries(0, 12)).append(b"forged").note(signer)
    assert post(witness.url, format_request(13, [], other))[:3:2] == (409, "13\n")
    # the refused but validly signed fork is kept as evidence
    w = Witness(witness.dir)
    try:
        assert any("409" in e["reason"] for e in w.store.evidence(origin))
    finally:
        w.close()


def _oversized_streamed(url: str) -> int:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"A" * 32768
        try:
            for _ in range(4):
                s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        return int(s.recv(100).split(b" ")[1])


def test_oversized_streamed_body(witness):
    assert _oversized_streamed(witness.url) == 413


def split_view(k: int = 10, n: int = 20):
    """Two copies of one log: identical up to index k, different after it."""
    common = MemTree(entries(0, k))
    a = common.copy().append(*entries(k, n, "a"))
    b = common.copy().append(*entries(k, n, "b"))
    return common, a, b


def test_split_view_is_refused_over_http(witness):
    origin = "bank.example/split-view"
    signer, vkey = follow(witness, origin)
    common, a, b = split_view()
    client = WitnessClient(witness.url, vkey)
    assert client.add_checkpoint(0, [], common.note(signer))
    cos_a = client.add_checkpoint(10, a.proof(10), a.note(signer))
    # the other copy, with a genuine proof from the common prefix: the witness has moved on
    with pytest.raises(Conflict) as c:
        client.add_checkpoint(10, b.proof(10), b.note(signer))
    assert c.value.size == 20
    # re-proving from the witness's size: same size, another root
    with pytest.raises(Conflict):
        client.add_checkpoint(20, [], b.note(signer))
    # growing the fork does not help: no proof links it to what the witness cosigned
    b.append(*entries(20, 25, "b"))
    with pytest.raises(WitnessRefused) as r:
        client.add_checkpoint(20, b.proof(20), b.note(signer))
    assert r.value.status == 422
    client.close()
    # a k-of-n verifier accepts copy A and refuses copy B (it has no cosignature)
    assert verify_cosigned(a.note(signer) + "".join(cos_a), signer.verifier(), [vkey], 1).ok
    rb = verify_cosigned(b.note(signer), signer.verifier(), [vkey], 1)
    assert not rb.ok and "0 cosigned, 1 required" in rb.summary() and "too few" in rb.problems[-1]
    # moving A's cosignature onto B's checkpoint does not verify
    assert not verify_cosigned(b.note(signer, 20) + "".join(cos_a), signer.verifier(), [vkey], 1).ok


def test_split_view_concurrent_requests_cosign_one_copy_only(witness):
    origin = "bank.example/split-view-race"
    signer, vkey = follow(witness, origin)
    common, a, b = split_view()
    assert post(witness.url, format_request(0, [], common.note(signer)))[0] == 200
    bodies = {"a": format_request(10, a.proof(10), a.note(signer)), "b": format_request(10, b.proof(10), b.note(signer))}
    results: list[tuple[str, int]] = []
    lock = threading.Lock()

    def go(which: str) -> None:
        status = post(witness.url, bodies[which])[0]
        with lock:
            results.append((which, status))

    threads = [threading.Thread(target=go, args=("ab"[i % 2],)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cosigned = {w for w, s in results if s == 200}
    assert len(cosigned) == 1, results
    assert all(s in (200, 409) for _, s in results)


def test_restart_after_kill9_keeps_state_and_refuses_forks(tmp_path):
    Witness.init(tmp_path, "witness.test/restart").close()
    proc = WitnessProcess(tmp_path).start()
    origin = "bank.example/restart"
    signer, vkey = follow(proc, origin)
    common, a, b = split_view()
    try:
        assert post(proc.url, format_request(0, [], common.note(signer)))[0] == 200
        assert post(proc.url, format_request(10, a.proof(10), a.note(signer)))[0] == 200
        proc.kill9()  # right after the 200: the state must already be on disk
        proc.start()
        assert post(proc.url, format_request(20, [], b.note(signer)))[:3:2] == (409, "20\n")
        assert post(proc.url, format_request(10, b.proof(10), b.note(signer)))[:3:2] == (409, "20\n")

        # kill -9 in the middle of a request (half a body sent), then restart
        a30 = a.copy().append(*entries(20, 30, "a"))
        body = format_request(20, a30.proof(20), a30.note(signer))
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as s:
            s.sendall(f"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[:40])
            proc.kill9()
        proc.start()
        assert post(proc.url, format_request(20, [], b.note(signer)))[0] == 409

        # kill -9 racing a whole request: whichever way it went, the state is 20 or 30, never a fork
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as s:
            s.sendall(f"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            proc.kill9()
        proc.start()
        info = json.loads(urllib.request.urlopen(proc.url + "/").read())
        size = next(log["tree_size"] for log in info["logs"] if log["origin"] == origin)
        assert size in (20, 30)
        b30 = b.copy().append(*entries(20, 30, "b"))
        assert post(proc.url, format_request(size, b30.proof(size) if size < 30 else [], b30.note(signer)))[0] in (409, 422)
        # and the genuine log still advances
        a40 = a30.copy().append(*entries(30, 40, "a"))
        status, _, cos = post(proc.url, format_request(size, a40.proof(size), a40.note(signer)))
        assert status == 200
        assert verify_cosigned(a40.note(signer) + cos, signer.verifier(), [vkey], 1).ok
    finally:
        proc.stop()
