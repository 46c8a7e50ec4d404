"""C2SP signed notes and tlog-tiles against the Go reference vectors."""

from __future__ import annotations

import base64
import hashlib

import pytest

from glasslog.ledger import Entry, Ledger
from glasslog.ledger.note import NoteError, Signer, Verifier, open_checkpoint, open_note, parse_checkpoint, sign_note
from glasslog.ledger.tiles import TilePathError, decode_entry_bundle, parse_tile_path, tile_path

from .conftest import load_vector


@pytest.fixture(scope="module")
def note_vec():
    return load_vector("signed_note.json")


def test_signed_note_reproduced_byte_for_byte(note_vec):
    signer = Signer(note_vec["key_name"], bytes.fromhex(note_vec["ed25519_seed_hex"]))
    assert str(signer) == note_vec["signer_key"]
    assert str(signer.verifier()) == note_vec["verifier_key"]
    assert signer.verifier().public_key.hex() == note_vec["public_key_hex"]
    assert sign_note(note_vec["checkpoint_text"], signer) == note_vec["signed_note"]
    assert Signer.parse(note_vec["signer_key"]) == signer


def test_signed_note_opens_and_parses(note_vec):
    verifier = Verifier.parse(note_vec["verifier_key"])
    assert open_note(note_vec["signed_note"], verifier) == note_vec["checkpoint_text"]
    cp = open_checkpoint(note_vec["signed_note"], verifier)
    assert (cp.origin, cp.tree_size) == ("example.org/decisions", 70000)
    assert cp.root_hash == base64.b64decode(load_vector("tiles.json")["root"])


def test_tampered_notes_are_rejected(note_vec):
    verifier = Verifier.parse(note_vec["verifier_key"])
    good = note_vec["signed_note"]
    sig_line = good.rsplit("\n\n", 1)[1]
    raw = bytearray(base64.b64decode(sig_line.split(" ")[2]))
    raw[-1] ^= 1
    bad_sig = good.replace(sig_line.split(" ")[2].strip(), base64.b64encode(bytes(raw)).decode())
    cases = {
        "changed size": good.replace("70000", "70001"),
        "bad signature": bad_sig,
        "no trailing newline": good[:-1],
        "no signature": note_vec["checkpoint_text"] + "\n",
        "other key": sign_note(note_vec["checkpoint_text"], Signer("example.org/decisions", b"\x01" * 32)),
        "garbage sig line": note_vec["checkpoint_text"] + "\n- example.org/decisions abc\n",
    }
    for what, note in cases.items():
        with pytest.raises(NoteError):
            open_note(note, verifier)
            pytest.fail(what)


@pytest.mark.parametrize(
    "size",
    ["01", "+1", "-1", " 1", "1 ", "\u0661", "\uff11", "1.0", "", "0x10", "99999999999999999999999"],
)
def test_malformed_checkpoint_sizes_are_rejected(size):
    root = base64.b64encode(b"\x00" * 32).decode()
    with pytest.raises(NoteError):
        parse_checkpoint(f"example.org/log\n{size}\n{root}\n")


def test_malformed_checkpoint_roots_are_rejected():
    for root in [base64.b64encode(b"\x00" * 31).decode(), "not base64!", base64.b64encode(b"\x00" * 32).decode().rstrip("=")]:
        with pytest.raises(NoteError):
            parse_checkpoint(f"example.org/log\n5\n{root}\n")
    assert parse_checkpoint("example.org/log\n0\n" + base64.b64encode(b"\x00" * 32).decode() + "\n").tree_size == 0


@pytest.mark.parametrize(
    "vkey",
    [
        "example.org/decisions+3050b837+AQKXjAYHJD7jrNaAQrIQcM6fqlBYXEPyDvLkRZNwHi6I",  # key changed
        "example.org/decisions+3050b838+AQKXjAYHJD7jrNaAQrIQcM6fqlBYXEPyDvLkRZNwHi6H",  # hash changed
        "example.org/decisions+3050b837",
        "example.org/decisions+3050B837+AQKXjAYHJD7jrNaAQrIQcM6fqlBYXEPyDvLkRZNwHi6H",
        "example.org/decisions+3050b837+AgKXjAYHJD7jrNaAQrIQcM6fqlBYXEPyDvLkRZNwHi6H",  # algorithm 2
        "+3050b837+AQKXjAYHJD7jrNaAQrIQcM6fqlBYXEPyDvLkRZNwHi6H",
    ],
)
def test_malformed_verifier_keys_are_rejected(vkey):
    with pytest.raises(NoteError):
        Verifier.parse(vkey)


def test_tile_paths():
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(1, 1, 17) == "tile/1/001.p/17"
    assert tile_path(None, 273, 112) == "tile/entries/273.p/112"
    ref = parse_tile_path("tile/0/x001/x234/067")
    assert (ref.level, ref.index, ref.width) == (0, 1234067, 256)
    for bad in ["tile/0/1", "tile/0/x000/001", "tile/0/001.p/256", "tile/0/001.p/0", "tile/00/001", "tile/0/001.p/01"]:
        with pytest.raises(TilePathError):
            parse_tile_path(bad)


@pytest.fixture(scope="module")
def tiles_ledger(tmp_path_factory):
    vec = load_vector("tiles.json")
    lg = Ledger.create(tmp_path_factory.mktemp("tiles") / "log", "example.org/decisions")
    n = vec["tree_size"]
    # The vectors' entries are plain text, not glasslog JSON; build Entry objects directly.
    for start in range(0, n, 5000):
        lg.append([Entry(f"entry {i}\n".encode(), "test") for i in range(start, min(n, start + 5000))])
    yield lg, vec
    lg.close()


def test_tiles_byte_exact(tiles_ledger):
    lg, vec = tiles_ledger
    assert lg.size == 70000
    assert lg.root() == base64.b64decode(vec["root"])
    assert len(vec["tiles"]) == 137
    for t in vec["tiles"]:
        ref = parse_tile_path(t["path"])
        assert ref.width == t["width"]
        data = lg.tile(ref.level, ref.index, ref.width)
        assert len(data) == 32 * t["width"]
        assert hashlib.sha256(data).hexdigest() == t["sha256_of_tile_bytes"], t["path"]


def test_entry_bundles_byte_exact(tiles_ledger):
    lg, vec = tiles_ledger
    for b in vec["entry_bundles"]:
        path = b["path"] if b["path"].startswith("tile/") else "tile/entries/" + b["path"]
        ref = parse_tile_path(path)
        data = lg.entry_bundle(ref.index, ref.width)
        assert hashlib.sha256(data).hexdigest() == b["sha256_of_bundle_bytes"]
        assert len(decode_entry_bundle(data)) == b["entries"]


def test_tiles_beyond_tree_are_refused(tiles_ledger):
    lg, _ = tiles_ledger
    with pytest.raises(LookupError):
        lg.tile(0, 273)  # only 112 leaves in the last level-0 tile
    with pytest.raises(LookupError):
        lg.tile(0, 273, 113)


def test_checkpoint_with_the_vector_key_matches_the_vector(tiles_ledger, note_vec):
    lg, _ = tiles_ledger
    signer = Signer(note_vec["key_name"], bytes.fromhex(note_vec["ed25519_seed_hex"]))
    text = f"{lg.origin}\n{lg.size}\n{base64.b64encode(lg.root()).decode()}\n"
    assert sign_note(text, signer) == note_vec["signed_note"]
