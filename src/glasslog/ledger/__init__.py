"""The log itself: RFC 9162 Merkle tree, stored hashes and tiles, proofs,
C2SP signed checkpoints, canonical JSON entries and private-value commitments.
"""

from ..records import SCHEMA_VERSION, EntryError, utc_now
from .commitments import check_commitment, commit, commitment_of
from .entries import Entry, canonical_json
from .errors import KeyFileError, LedgerError
from .log import DATA_DIR_ENV, AppendResult, GroupCommit, Ledger, PrivateValue, default_data_dir
from .merkle import EMPTY_ROOT, ProofError, leaf_hash, node_hash, verify_consistency, verify_inclusion
from .note import Checkpoint, NoteError, Signer, Verifier, open_checkpoint, parse_checkpoint, sign_note

__all__ = [
    "SCHEMA_VERSION", "EMPTY_ROOT", "DATA_DIR_ENV",
    "Entry", "EntryError", "canonical_json", "utc_now",
    "commit", "commitment_of", "check_commitment",
    "leaf_hash", "node_hash", "verify_inclusion", "verify_consistency", "ProofError",
    "Checkpoint", "NoteError", "Signer", "Verifier", "open_checkpoint", "parse_checkpoint", "sign_note",
    "Ledger", "LedgerError", "KeyFileError", "PrivateValue", "AppendResult", "GroupCommit", "default_data_dir",
]
