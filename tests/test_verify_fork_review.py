"""What a fresh tester found handing out a forked receipt (issue 15), in-process with a real log and real keys.

A witness key published under a second name, the log's own key given as a witness, a receipt with a malformed
``private`` field, a receipt verified with no witness policy, ``glasslog checkpoint`` without cosignatures, and
malformed or CRLF checkpoint notes.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from glasslog.capture import receipt as make_receipt
from glasslog.cli import app as cli
from glasslog.ledger import Ledger, utc_now
from glasslog.ledger.cosignature import Cosigner

runner = CliRunner()


def text(result) -> str:
    return " ".join(result.output.split())


def _entries(prefix: str, n: int) -> list[dict]:
    return [{"type": "deployment", "v": 1, "deployment": f"{prefix}{i}", "visibility": "public-service",
             "description": "test", "time": utc_now()} for i in range(n)]


@pytest.fixture()
def logs(tmp_path):
    """An honest log cosigned by w1 and w4, and a fork of it (a copy with the same key, diverging after 6 entries)
    cosigned only by w4 -- and a copy of w4's line under a second name with the same raw key, as the tester did."""
    import shutil

    w1, w4 = Cosigner.generate("w1.example/w"), Cosigner.generate("w4.example/w")
    alias = Cosigner("w4-alias.example/w", w4.seed)
    honest, forked = tmp_path / "honest", tmp_path / "forked"
    with Ledger.create(honest, "bank.example/fork-test") as lg:
        lg.append(_entries("d", 6))
        lg.checkpoint()
    shutil.copytree(honest, forked)
    for d, prefix, witnesses in ((honest, "honest", (w1, w4)), (forked, "forked", (w4, alias))):
        with Ledger.open(d) as lg:
            lg.append(_entries(prefix, 4))
            note = lg.checkpoint()
            body = note[: note.index("\n\n") + 1]
            for w in witnesses:
                lg.store.put_cosignature(lg.signed_size(), str(w.verifier()), w.cosign(body), utc_now())
            (tmp_path / f"{prefix}.json").write_text(make_receipt(lg, 8).to_json())
    return {"tmp": tmp_path, "w1": str(w1.verifier()), "w4": str(w4.verifier()), "alias": str(alias.verifier()),
            "honest": honest, "forked": forked, "vkey": (honest / "log.vkey").read_text().strip()}


def verify(d: dict, name: str, *args: str):
    return runner.invoke(cli, ["verify", "receipt", str(d["tmp"] / f"{name}.json"), "--key", d["vkey"],
                               "-d", str(d["tmp"]), *args])


def test_a_second_name_for_a_witness_key_counts_once(logs):
    keys = ["--witness-key", logs["w4"], "--witness-key", logs["alias"], "--witness-key", logs["w1"]]
    r = verify(logs, "forked", *keys)
    assert r.exit_code == 1, r.output
    assert "has the same public key as w4.example/w (one witness under two names); it counts once" in text(r)
    assert "1 cosigned, 2 required" in text(r) and "Receipt verified" not in text(r)
    r = verify(logs, "honest", *keys)
    assert r.exit_code == 0 and "2 cosigned, 2 required" in text(r), r.output
    # the JSON names the witness once
    r = verify(logs, "forked", *keys, "--json")
    assert r.exit_code == 1 and [w["name"] for w in json.loads(r.stdout)["witnesses"]] == ["w4.example/w"]


def test_min_witnesses_counts_distinct_public_keys(logs):
    r = verify(logs, "forked", "--witness-key", logs["w4"], "--witness-key", logs["alias"], "--min-witnesses", "2")
    assert r.exit_code == 2 and "--min-witnesses 2 needs at least 2 distinct witness keys (counted by public key), got 1"\
        " from 2 --witness-key options" in text(r), r.output


def test_witnesses_add_refuses_a_second_name_or_the_logs_own_key(logs):
    d = str(logs["honest"])
    r = runner.invoke(cli, ["witnesses", "add", "http://127.0.0.1:9/w4", "--key", logs["w4"], "--no-check", "-d", d])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["witnesses", "add", "http://127.0.0.1:9/alias", "--key", logs["alias"], "--no-check", "-d", d])
    assert r.exit_code == 2 and "same public key as the active witness w4.example/w" in text(r)
    from glasslog.ledger.note import Signer

    own = Cosigner("looks.like/a-witness", Signer.parse((logs["honest"] / "log.key").read_text().strip()).seed)
    for check in ("--no-check", "--check"):
        r = runner.invoke(cli, ["witnesses", "add", "http://127.0.0.1:9/own", "--key", str(own.verifier()), check, "-d", d])
        assert r.exit_code == 2 and "is the log's own key" in text(r), r.output
    with Ledger.open(logs["honest"]) as lg:
        from glasslog.ledger.witnesses import active_witnesses

        assert [w.name for w in active_witnesses(lg)] == ["w4.example/w"]


def test_the_logs_own_key_as_witness_key_is_a_usage_error(logs):
    for key in (logs["vkey"], str(Cosigner("other-name.example", b"\0" * 32).verifier())):
        r = verify(logs, "honest", "--witness-key", key, "--witness-key", logs["w1"])
        if key == logs["vkey"]:
            assert r.exit_code == 2 and "is the log's own key: a log cannot witness itself" in text(r), r.output
        else:
            assert r.exit_code == 1  # a stranger's key is not a usage error: it just did not cosign


@pytest.mark.parametrize("private", ["a string", ["a", "list"], 7, True])
def test_a_malformed_private_field_is_a_usage_error_naming_it(logs, private):
    path = logs["tmp"] / "honest.json"
    rc = json.loads(path.read_text())
    rc["private"] = private
    path.write_text(json.dumps(rc))
    r = verify(logs, "honest")
    assert r.exit_code == 2 and "receipt field 'private' must be an object" in text(r), r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("field,value,message", [
    ("previous", "text", "receipt field 'previous' must be an object"),
    ("inclusion_proof", "abc", "receipt field 'inclusion_proof' must be list"),
    ("entry", 5, "receipt field 'entry' must be a base64 string"),
    ("index", "3", "receipt field 'index' must be int"),
    ("checkpoint", ["x"], "receipt field 'checkpoint' must be str"),
])
def test_other_receipt_fields_of_the_wrong_type_are_usage_errors(logs, field, value, message):
    path = logs["tmp"] / "honest.json"
    rc = json.loads(path.read_text())
    rc[field] = value
    path.write_text(json.dumps(rc))
    r = verify(logs, "honest")
    assert r.exit_code == 2 and message in text(r), r.output


def test_without_a_witness_policy_the_verdict_says_witnesses_were_not_checked(logs):
    r = verify(logs, "forked")
    assert r.exit_code == 0
    assert "witnesses were not checked" in text(r) and "--witness-key" in text(r)
    r = verify(logs, "forked", "--json")
    out = json.loads(r.stdout)
    assert out["witnesses_checked"] is False and "--witness-key" in out["warning"]
    r = verify(logs, "honest", "--witness-key", logs["w1"], "--json")
    out = json.loads(r.stdout)
    assert out["witnesses_checked"] is True and "warning" not in out


def test_glasslog_checkpoint_prints_the_cosignatures_and_a_kept_note_checks_with_a_policy(logs):
    d = str(logs["honest"])
    r = runner.invoke(cli, ["checkpoint", "-d", d])
    assert r.exit_code == 0
    note = r.stdout
    assert note.count("\u2014 ") == 3 and "\u2014 w1.example/w " in note and "\u2014 w4.example/w " in note
    kept = logs["tmp"] / "kept.note"
    kept.write_text(note)
    r = runner.invoke(cli, ["verify", "checkpoint", str(kept), "--key", logs["vkey"], "--witness-key", logs["w1"],
                            "--witness-key", logs["w4"], "-d", d])
    assert r.exit_code == 0 and "Consistent" in text(r), r.output
    # a note kept before any witness cosigned: the message says so, not "NOT consistent"
    with Ledger.open(logs["honest"]) as lg:
        kept.write_text(lg.checkpoint())
    r = runner.invoke(cli, ["verify", "checkpoint", str(kept), "--key", logs["vkey"], "--witness-key", logs["w1"], "-d", d])
    assert r.exit_code == 1 and "no witness cosigned this checkpoint" in text(r), r.output
    assert "NOT consistent" not in text(r) and "Witness policy NOT met" in text(r)


@pytest.mark.parametrize("content,problem", [
    (b"", "is empty"),
    (b'{"format": "something else"}\n', "is JSON but not a receipt with a checkpoint"),
    (None, "must end with a newline"),  # the honest note without its final newline
    ("crlf", "CR characters"),
])
def test_a_malformed_kept_note_is_a_usage_error_in_verify_checkpoint_and_verify_log(logs, content, problem):
    d = str(logs["honest"])
    note = runner.invoke(cli, ["checkpoint", "-d", d]).stdout
    bad = logs["tmp"] / "bad.note"
    if content is None:
        bad.write_bytes(note.encode()[:-1])
    elif content == "crlf":
        bad.write_bytes(note.replace("\n", "\r\n").encode())
    else:
        bad.write_bytes(content)
    r = runner.invoke(cli, ["verify", "checkpoint", str(bad), "--key", logs["vkey"], "-d", d])
    assert r.exit_code == 2 and problem in text(r) and "NOT consistent" not in text(r), r.output
    r = runner.invoke(cli, ["verify", "log", "--checkpoint", str(bad), "--key", logs["vkey"], "-d", d])
    assert r.exit_code == 2 and problem in text(r), r.output


def test_a_crlf_checkpoint_in_a_receipt_is_refused(logs):
    path = logs["tmp"] / "honest.json"
    rc = json.loads(path.read_text())
    rc["checkpoint"] = rc["checkpoint"].replace("\n", "\r\n")
    path.write_text(json.dumps(rc))
    r = verify(logs, "honest")
    assert r.exit_code == 1 and "CR characters" in text(r) and "Receipt verified" not in text(r)


def test_witnesses_sync_timeout_bounds_the_whole_command(logs):
    """A witness that accepts the connection and never answers: each request used to wait 10 s whatever --timeout
    said (the tester's --timeout 5 took 12.5 s). Now the round ends at the deadline (a request gets >= 0.5 s)."""
    import socket
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
    try:
        d = str(logs["honest"])
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        assert runner.invoke(cli, ["witnesses", "add", url, "--key", logs["w1"], "--no-check", "-d", d]).exit_code == 0
        t0 = time.monotonic()
        r = runner.invoke(cli, ["witnesses", "sync", "--timeout", "1", "-d", d])
        elapsed = time.monotonic() - t0
    finally:
        silent.close()
    assert r.exit_code == 1 and "behind" in text(r), r.output
    assert elapsed < 4.0, elapsed  # 1 s of --timeout, a 0.5 s floor per request, start-up; before: over 10 s
