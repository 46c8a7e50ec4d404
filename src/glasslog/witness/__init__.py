"""A C2SP tlog-witness that a third party can run: ``glasslog witness init / add-log / serve``.

A witness follows logs by origin and verifier key and cosigns (C2SP
tlog-cosignature ``cosignature/v1``) each checkpoint a log submits to
``POST /add-checkpoint``, but only after checking, atomically per origin, that
it is consistent with the latest checkpoint it cosigned before. A log that
shows two different trees to two audiences (a split view) cannot get both
cosigned by the same witness.

It needs nothing of glasslog beyond ``glasslog.ledger`` (notes, Merkle proofs,
cosignatures), ``glasslog.storage.witness`` (its SQLite state) and Starlette /
uvicorn: the model stack (numpy, scikit-learn) is never imported, so it runs
on a small machine of its own: ``python -m glasslog.witness serve``.

Modules: ``core`` (the protocol and checks), ``app`` (the ASGI app),
``cli`` (the Typer sub-app), ``client`` (the log side: submitting checkpoints),
``catchup`` (a witness that fell behind pulls the log's checkpoint and tiles).
"""

from .core import MAX_BODY_BYTES, AddCheckpoint, Witness, WitnessError, parse_add_checkpoint

__all__ = ["Witness", "WitnessError", "AddCheckpoint", "parse_add_checkpoint", "MAX_BODY_BYTES"]
