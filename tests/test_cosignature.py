"""C2SP tlog-cosignature ``cosignature/v1`` (glasslog.ledger.cosignature).

Vectors and what they can and cannot check:

- The spec's own example (c2sp.org/tlog-cosignature, "Format" and "Ed25519
  signed message"): a checkpoint of ``example.com/behind-the-sofa`` cosigned
  by ``witness.example.com/w1`` at ``time 1679315147``. The spec does not
  publish that witness's public key, so the signature itself cannot be
  verified; the test checks the line decodes as key ID + u64 timestamp +
  64-byte signature with the spec's timestamp, and that the signed message
  we build is byte for byte the spec's example message.
- transparency-dev/formats ``note/note_cosigv1_test.go`` (BSD-style licence,
  The Go Authors): a native 0x04 verifier key (``remora.n621.de+da77ade7``,
  whose key ID we must reproduce), a 0x01 key accepted and converted, bad
  keys refused, and a cosignature whose timestamp is 1727964367.
- Independent implementation: ``tlog-scales`` (PyPI, Apache-2.0, by the
  author of the remora witness) verifies our cosignatures with its own
  ``Ed25519CosignatureVerifier`` and computes the same key ID. It has no
  Ed25519 cosigner of its own, so the cross-check runs in that one direction.
  It is in the ``test`` extra; if it does not install, that test skips.
"""

from __future__ import annotations

import base64
import struct

import pytest

from glasslog.ledger.cosignature import (
    Cosignature,
    CosignatureVerifier,
    Cosigner,
    add_signature_lines,
    cosignature_key_hash,
    cosigned_message,
    split_note,
    verify_cosigned,
)
from glasslog.ledger.note import Checkpoint, NoteError, generate_signer, sign_note

SPEC_CHECKPOINT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_NOTE = (
    SPEC_CHECKPOINT + "\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
SPEC_MESSAGE = b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_spec_example_decodes_and_message_matches():
    text, lines = split_note(SPEC_NOTE)
    assert text == SPEC_CHECKPOINT
    assert [s.name for s in lines] == ["example.com/behind-the-sofa", "witness.example.com/w1"]
    cs = Cosignature.from_line(lines[1])
    assert cs.timestamp == 1679315147
    assert len(cs.signature) == 64
    assert cosigned_message(SPEC_CHECKPOINT, 1679315147) == SPEC_MESSAGE
    # The log's own line is a plain Ed25519 note signature (64 bytes), not a cosignature.
    with pytest.raises(NoteError):
        Cosignature.from_line(lines[0])


# transparency-dev/formats note/note_cosigv1_test.go
def test_transparency_dev_verifier_keys():
    remora = CosignatureVerifier.parse("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2")
    assert remora.key_id.hex() == "da77ade7"
    assert str(remora) == "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
    assert cosignature_key_hash(remora.name, remora.public_key).hex() == "da77ade7"
    converted = CosignatureVerifier.parse("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
    assert str(converted).startswith("TEST+") and str(converted).split("+", 2)[2].startswith("BA")  # 0x04 form
    for bad in ("bananas.sigstore.dev+12344556", "rekor.sigstore.dev+12345678+THIS_IS_NOT_BASE64!",
                "rekor.sigstore.dev+12345678+AwEB", "rekor.sigstore.dev+00000000+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"):
        with pytest.raises(NoteError):
            CosignatureVerifier.parse(bad)


def test_transparency_dev_timestamp_vector():
    raw = base64.b64decode("ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==")
    from glasslog.ledger.cosignature import SignatureLine

    assert Cosignature.from_line(SignatureLine("w", raw[:4], raw[4:], "")).timestamp == 1727964367
    plain = base64.b64decode("eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXpWs1hPb/W/4xkNQY=")
    with pytest.raises(NoteError):
        Cosignature.from_line(SignatureLine("w", plain[:4], plain[4:], ""))


def _log_and_checkpoint(size=5, origin="bank.example/credit"):
    signer = generate_signer(origin)
    note = sign_note(Checkpoint(origin, size, bytes(range(32))).text(), signer)
    return signer, note


def test_sign_verify_round_trip_and_key_strings():
    w = Cosigner.generate("witness.example/w1")
    again = Cosigner.parse(str(w))
    assert again.seed == w.seed
    v = CosignatureVerifier.parse(str(w.verifier()))
    assert v == w.verifier()
    assert str(w).startswith("PRIVATE+KEY+witness.example/w1+")
    signer, note = _log_and_checkpoint()
    line = w.cosign(note[: note.index("\n\n") + 1], timestamp=1700000000)
    text, lines = split_note(note + line)
    cs = Cosignature.from_line(lines[-1])
    assert cs.timestamp == 1700000000 and cs.key_id == v.key_id
    assert v.verify(text, cs.timestamp, cs.signature)
    assert not v.verify(text, cs.timestamp + 1, cs.signature)  # the timestamp is signed
    assert not v.verify(text.replace("\n5\n", "\n6\n"), cs.timestamp, cs.signature)
    # a plain note verifier of the same key must not accept it: different key ID
    assert cs.key_id != bytes.fromhex(str(signer.verifier()).split("+")[1])


def test_extension_lines_are_signed():
    w = Cosigner.generate("w")
    body = "log.example\n3\n" + base64.b64encode(bytes(32)).decode() + "\nextension line\n"
    line = w.cosign(body, timestamp=1)
    _, lines = split_note(body + "\n" + line)
    cs = Cosignature.from_line(lines[0])
    assert w.verifier().verify(body, 1, cs.signature)
    assert not w.verifier().verify(body.replace("extension", "Extension"), 1, cs.signature)


def test_policy_k_of_n_names_witnesses_and_times():
    signer, note = _log_and_checkpoint()
    body = note[: note.index("\n\n") + 1]
    w1, w2, w3 = (Cosigner.generate(f"witness.example/w{i}") for i in (1, 2, 3))
    stranger = Cosigner.generate("other.example/w")
    cosigned = add_signature_lines(note, [w1.cosign(body, 1700000000), stranger.cosign(body, 1700000001),
                                          w2.cosign(body, 1700000002)])
    keys = [str(w.verifier()) for w in (w1, w2, w3)]
    r = verify_cosigned(cosigned, signer.verifier(), keys, 2, now=1700000100)
    assert r.ok, r.problems
    assert [(w.name, w.timestamp) for w in r.witnesses] == [("witness.example/w1", 1700000000), ("witness.example/w2", 1700000002)]
    assert r.witnesses[0].time == "2023-11-14T22:13:20Z"
    assert r.missing == [keys[2]]
    assert "witness.example/w1 at 2023-11-14T22:13:20Z" in r.summary()
    r3 = verify_cosigned(cosigned, signer.verifier(), keys, 3, now=1700000100)
    assert not r3.ok and "2 cosigned, 3 required" in r3.summary() and "too few" in r3.problems[-1]
    # duplicates of one witness count once
    dup = add_signature_lines(note, [w1.cosign(body, 5), w1.cosign(body, 6)])
    assert len(verify_cosigned(dup, signer.verifier(), keys, 0, now=10).witnesses) == 1
    assert not verify_cosigned(dup, signer.verifier(), keys, 2, now=10).ok


def test_policy_refuses_bad_log_signature_altered_lines_and_future_times():
    signer, note = _log_and_checkpoint()
    body = note[: note.index("\n\n") + 1]
    w = Cosigner.generate("w.example")
    good = note + w.cosign(body, 1000)
    other_log = generate_signer("bank.example/credit")
    r = verify_cosigned(good, other_log.verifier(), [w.verifier()], 1, now=2000)
    assert not r.ok and r.checkpoint is None and "log signature" in r.problems[0]
    # a cosignature moved onto another checkpoint of the same log does not verify
    note2 = sign_note(Checkpoint("bank.example/credit", 6, bytes(32)).text(), signer)
    forged = note2 + w.cosign(body, 1000).replace(w.name, w.name)
    r = verify_cosigned(forged, signer.verifier(), [w.verifier()], 1, now=2000)
    assert not r.ok and r.checkpoint.tree_size == 6 and "does not verify" in r.problems[0]
    future = note + w.cosign(body, 10_000)
    r = verify_cosigned(future, signer.verifier(), [w.verifier()], 1, now=1000)
    assert not r.ok and "future" in r.problems[0]
    with pytest.raises(NoteError):
        verify_cosigned(good, signer.verifier(), ["not a key"], 1)


def test_cosigned_note_still_opens_with_the_log_key_alone():
    from glasslog.ledger.note import open_checkpoint

    signer, note = _log_and_checkpoint()
    w = Cosigner.generate("w.example")
    cosigned = note + w.cosign(note[: note.index("\n\n") + 1])
    assert open_checkpoint(cosigned, signer.verifier()).tree_size == 5


def test_cross_check_with_tlog_scales():
    signing = pytest.importorskip("tlog_scales.signing", reason="tlog-scales (independent implementation) is not installed")
    tlog = pytest.importorskip("tlog_scales.tlog")
    signer, note = _log_and_checkpoint(size=20852163, origin="example.com/behind-the-sofa")
    w = Cosigner.generate("witness.example/w1")
    cosigned = note + w.cosign(note[: note.index("\n\n") + 1], 1679315147)
    theirs = tlog.Checkpoint.from_text(cosigned)
    vkey = signing.Vkey.from_string(str(w.verifier()))
    assert vkey.sig_type == 4
    own_key = signing.Vkey(w.name, None, 4, w.verifier().public_key)  # they compute the key ID themselves
    assert own_key.key_id == vkey.key_id
    valid = signing.VkeySet(own_key, signing.Vkey.from_string(str(signer.verifier()))).verify(theirs.signatures, theirs)
    assert {v.name for v, _ in valid} == {"witness.example/w1", "example.com/behind-the-sofa"}
    assert signing.Ed25519CosignatureVerifier.get_timestamp(theirs.signatures[1].payload) == 1679315147
    # and they refuse it when the checkpoint is altered
    altered = tlog.Checkpoint(theirs.origin, theirs.size + 1, theirs.root_hash, theirs.signatures)
    assert signing.VkeySet(own_key).verify(altered.signatures, altered) == set()


def test_timestamp_range():
    with pytest.raises(NoteError):
        cosigned_message(SPEC_CHECKPOINT, 1 << 63)
    with pytest.raises(NoteError):
        cosigned_message(SPEC_CHECKPOINT, -1)
    raw = bytes(4) + struct.pack(">Q", 1 << 63) + bytes(64)
    from glasslog.ledger.cosignature import SignatureLine

    with pytest.raises(NoteError):
        Cosignature.from_line(SignatureLine("w", raw[:4], raw[4:], ""))


def test_the_log_key_given_as_a_witness_key_is_refused():
    """Whoever holds the log's key can produce a cosignature/v1 line with it: the log cannot count as its own witness."""
    log = generate_signer("bank.example/self")
    note = sign_note(Checkpoint("bank.example/self", 3, b"\x01" * 32).text(), log)
    self_cosigner = Cosigner.parse(str(log))  # the log's own private key, used as a cosigner
    cosigned = add_signature_lines(note, [self_cosigner.cosign(note.split("\n\n")[0] + "\n")])
    r = verify_cosigned(cosigned, log.verifier(), [str(self_cosigner.verifier())], 1)
    assert not r.ok and any("is the log's own key" in p for p in r.problems) and r.witnesses == []
    # the same key in its 0x01 form is the same refusal
    r = verify_cosigned(cosigned, log.verifier(), [str(log.verifier())], 1)
    assert not r.ok and any("is the log's own key" in p for p in r.problems)


def test_one_key_under_two_names_is_one_witness():
    """cosignature/v1 does not sign the witness's name: a copy of w4's line under a second name with the same raw key
    must not make a second witness (the tester's forked receipt passed 2 of 2 that way)."""
    signer, note = _log_and_checkpoint()
    body = note[: note.index("\n\n") + 1]
    w4, w1 = Cosigner.generate("w4.example/w"), Cosigner.generate("w1.example/w")
    alias = Cosigner("w4-alias.example/w", w4.seed)  # same raw Ed25519 key, another name
    forked = add_signature_lines(note, [w4.cosign(body, 100), alias.cosign(body, 100)])
    keys = [str(w4.verifier()), str(alias.verifier()), str(w1.verifier())]
    r = verify_cosigned(forked, signer.verifier(), keys, 2, now=200)
    assert not r.ok and [w.name for w in r.witnesses] == ["w4.example/w"]
    assert "1 cosigned, 2 required" in r.summary()
    assert r.notes == ["witness key w4-alias.example/w has the same public key as w4.example/w: one witness, counted once"]
    # two names for one key cannot make a 2-of-2 policy possible either
    r2 = verify_cosigned(forked, signer.verifier(), keys[:2], 2, now=200)
    assert not r2.ok and "the policy needs 2 witnesses but trusts only 1" in r2.problems
    # an honest second witness still counts
    honest = add_signature_lines(forked, [w1.cosign(body, 101)])
    assert verify_cosigned(honest, signer.verifier(), keys, 2, now=200).ok
    # the log's own key under a witness name is refused (raw key compared, whatever the name)
    own = Cosigner("looks.like/a-witness", signer.seed)
    r3 = verify_cosigned(add_signature_lines(note, [own.cosign(body, 100)]), signer.verifier(), [str(own.verifier())], 1)
    assert not r3.ok and "is the log's own key" in r3.problems[0]
    assert "the policy needs 1 witness but" in r3.problems[1]


def test_junk_signature_line_of_an_unknown_key_is_ignored_and_named():
    signer, note = _log_and_checkpoint()
    body = note[: note.index("\n\n") + 1]
    w1 = Cosigner.generate("w1.example/w")
    junk = note + "\u2014 junk.example/w not*base64\n"
    honest = add_signature_lines(note, [w1.cosign(body, 100)]) + "\u2014 junk.example/w not*base64\n"
    r = verify_cosigned(honest, signer.verifier(), [str(w1.verifier())], 1, now=200)
    assert r.ok, r.problems
    assert r.notes == ["signature line by junk.example/w: its signature is not valid standard base64 (not a trusted key; ignored)"]
    # the same junk under a trusted witness's name is a problem naming the line
    bad = note + "\u2014 w1.example/w not*base64\n"
    r = verify_cosigned(bad, signer.verifier(), [str(w1.verifier())], 1, now=200)
    assert not r.ok and "signature line by w1.example/w: its signature is not valid standard base64" in r.problems
    # strict split names the line; junk under the log's own name fails the log signature, naming it
    with pytest.raises(NoteError, match="signature line by junk.example/w: its signature is not valid"):
        split_note(junk)
    from glasslog.ledger.note import open_checkpoint

    assert open_checkpoint(junk, signer.verifier()).tree_size == 5
    with pytest.raises(NoteError, match=f"signature line by {signer.name}: its signature is too short"):
        open_checkpoint(note + f"\u2014 {signer.name} AAAA\n", signer.verifier())
