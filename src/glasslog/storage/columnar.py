"""The columnar copy of the log that monitors and audits read: decoded decisions, outputs and outcomes per
deployment, in chunks of typed arrays, built incrementally from the log and erased with the private values it holds.

Why: opening a million decisions from their JSON entries and private values
takes about 20 CPU seconds (orjson for 2M values, then Python building
columns; BENCHMARKS.md, "Monitors"); reading the same data as arrays takes a
fraction of a second. The log stays the source of truth: this copy is derived
from it, like the read model, and can be dropped and rebuilt.

What is kept. Entries ``[start, stop)`` of the log are decoded into one
*chunk* per group, each column its own stored row ``(grp, start, stop, name,
data)``:

- group ``d["<deployment>", "<model>"]`` (a deployment's decisions by one model), one row per decision entry:
  ``index`` (int64, entry index), ``time`` (int64 microseconds since the
  epoch, UTC, ``NAT`` if unparsable), ``committed`` (bool: the output is a
  commitment, opened from the private output), ``label`` (categorical: the
  output's label), ``proba`` (float64 (n, k): the output's class
  probabilities, NaN where absent), ``input.available`` (bool: the private
  input is beside the log, not erased) and ``in:<feature>`` for every input
  feature seen in the chunk;
- group ``o``, one row per outcome entry: ``decision``, ``index`` (int64),
  ``time`` (int64 us), ``committed`` (bool), ``have`` (bool: the value is
  known: public, or opened from an unerased private value) and ``value``
  (categorical);
- group ``m``: ``json``, the deployer's ``metric`` entries as ``[index, entry]`` pairs.

Column encoding (``encode`` / ``decode``), never pickle: ``b"GLC1"``, a
little-endian uint32 header length, a JSON header, then the raw little-endian
array bytes. Kinds: ``num`` (float64, NaN for null; header ``ints`` when
every value was a JSON integer, so object views give back ``int``), ``cat``
(int32 codes into the header's ``values``, -1 for null: strings, booleans,
mixed or nested values), ``i8``, ``b1``, ``f8`` (with ``shape``), ``json``.
A ``cat`` column's dictionary holds only values some row uses, so an erased
value leaves no trace in it.

Building (``refresh``): lazily, on first use, from where the last build
stopped (``ColumnStore.state``), in pieces of ``PIECE_ENTRIES`` entries; each
piece is stored with a compare-and-swap on the built size (two builders
never store the same piece twice) and, in the same transaction, every private
value erased meanwhile is scrubbed from it, so an erasure racing a build
cannot come back. Not in the append's transaction: decoding costs the
writer about as much as the reader saves (BENCHMARKS.md), and most logs are
read by monitors far less often than they are written.

Erasure (``scrub``): each back end's ``erase_private`` nulls the erased
input, output or outcome in every chunk that holds it, in the erasure's own
transaction, and re-encodes the touched columns (the dictionary without the
value).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import orjson
import pandas as pd

__all__ = ["ChunkRow", "Column", "ColumnStore", "PIECE_ENTRIES", "NAT", "decision_group", "is_decision_group", "split_group", "encode",
           "decode", "encode_values", "build", "refresh", "scrub", "Chunk", "Columns", "read", "plain", "matrix",
           "as_float", "as_objects"]

PIECE_ENTRIES = 131_072
"""Entries decoded per stored piece (about 80,000 decisions of a 20-feature log: 15 MB of columns)."""

NAT = np.iinfo(np.int64).min
"""An unparsable time (numpy's NaT as int64)."""

_MAGIC = b"GLC1"
_KINDS_OF = {"input": "input", "output": "output", "outcome": "outcome"}


@dataclass(frozen=True)
class ChunkRow:
    """One stored column of one chunk: group, entry range ``[start, stop)``, column name, encoded bytes."""

    grp: str
    start: int
    stop: int
    name: str
    data: bytes


@dataclass
class Column:
    """A decoded column. ``kind``: ``num``/``cat``/``i8``/``b1``/``f8``/``json``; ``data``: the array (codes for
    ``cat``); ``values``: a ``cat`` column's dictionary; ``ints``: a ``num`` column held only JSON integers."""

    kind: str
    data: Any
    values: list = field(default_factory=list)
    ints: bool = False

    def __len__(self) -> int:
        return len(self.data)


class ColumnStore(Protocol):
    """What a back end keeps for the columnar copy (``LogStore.columnar``); see the module docstring."""

    def state(self) -> tuple[int, int]:
        """``(built upto, erasures)``: entries [0, upto) are in chunks; ``erasures`` counts scrubs so far (a reader
        that keeps columns between runs re-reads them when it changed)."""

    def put(self, start: int, upto: int, rows: Sequence[ChunkRow]) -> bool:
        """Store the chunks of entries [start, upto), scrubbing private values erased meanwhile, and move the
        built size to ``upto``, atomically; False (nothing stored) if the built size is no longer ``start``."""

    def chunks(self, since: int, upto: int, names: Sequence[str] | None = None) -> Iterator[ChunkRow]:
        """Stored columns of chunks starting in [since, upto), by start then group (all columns, or these names)."""

    def drop(self) -> None:
        """Forget the whole copy (rebuilt from the log on next use)."""


def decision_group(deployment: Any, model: Any) -> str:
    """The group name of a (deployment, model) pair's decisions: ``d`` and the JSON array of both names as text."""
    return "d" + orjson.dumps([str(deployment), str(model)]).decode()


def is_decision_group(grp: str) -> bool:
    """The group holds decisions (not ``o`` outcomes or ``m`` metrics)."""
    return grp.startswith("d[")


def split_group(grp: str) -> tuple[str, str]:
    """``(deployment, model)`` of a decision group."""
    dep, model = orjson.loads(grp[1:])
    return dep, model


# ------------------------------------------------------------------ encoding
def encode(col: Column) -> bytes:
    """A column's stored bytes (see the module docstring)."""
    header: dict[str, Any] = {"kind": col.kind, "n": len(col.data)}
    if col.kind == "json":
        raw = orjson.dumps(col.data)
    else:
        dtype = {"num": "<f8", "f8": "<f8", "cat": "<i4", "i8": "<i8", "b1": "|b1"}[col.kind]
        arr = np.ascontiguousarray(col.data, dtype=dtype)
        raw = arr.tobytes()
        header["shape"] = list(arr.shape)
        if col.kind == "cat":
            header["values"] = col.values
        if col.kind == "num" and col.ints:
            header["ints"] = True
    head = orjson.dumps(header)
    return _MAGIC + struct.pack("<I", len(head)) + head + raw


def decode(data: bytes) -> Column:
    """A column from its stored bytes.

    Raises:
        ValueError: not a column this module wrote (a damaged database).
    """
    data = bytes(data)
    if data[:4] != _MAGIC:
        raise ValueError("not a glasslog column (bad magic)")
    (size,) = struct.unpack("<I", data[4:8])
    header = orjson.loads(data[8 : 8 + size])
    raw = memoryview(data)[8 + size :]
    kind = header["kind"]
    if kind == "json":
        return Column("json", orjson.loads(raw))
    dtype = {"num": "<f8", "f8": "<f8", "cat": "<i4", "i8": "<i8", "b1": "|b1"}[kind]
    arr = np.frombuffer(raw, dtype=dtype).reshape(header["shape"])
    return Column(kind, arr, header.get("values", []), bool(header.get("ints", False)))


def _value_key(v: Any) -> tuple:
    return (type(v).__name__, orjson.dumps(v, option=orjson.OPT_SORT_KEYS) if isinstance(v, (list, dict)) else v)


def encode_values(values: list) -> Column:
    """The column for a list of JSON values (None = null): ``num`` when all are numbers, else ``cat``."""
    types = set(map(type, values))
    types.discard(type(None))
    if types <= {int, float}:
        arr = np.array(values, dtype=float)
        ints = types == {int}
        if ints and len(arr) and np.nanmax(np.abs(arr), initial=0.0) > 2.0**53:
            pass  # integers beyond float64's exact range: kept as categories
        else:
            return Column("num", arr, ints=ints)
    if types <= {str}:
        codes, uniques = pd.factorize(np.array(values, dtype=object), use_na_sentinel=True)
        return Column("cat", codes.astype(np.int32), list(uniques))
    index: dict[tuple, int] = {}
    uniq: list = []
    codes = np.empty(len(values), dtype=np.int32)
    for k, v in enumerate(values):
        if v is None:
            codes[k] = -1
            continue
        key = _value_key(v)
        c = index.get(key)
        if c is None:
            c = index[key] = len(uniq)
            uniq.append(v)
        codes[k] = c
    return Column("cat", codes, uniq)


def _compact(col: Column) -> Column:
    """A ``cat`` column whose dictionary keeps only the values some row uses."""
    used = np.unique(col.data[col.data >= 0])
    remap = np.full(len(col.values) + 1, -1, dtype=np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    return Column("cat", remap[col.data], [col.values[k] for k in used.tolist()])


# ------------------------------------------------------------------ building
def _times(values: list) -> np.ndarray:
    """RFC 3339 strings to int64 microseconds (``NAT`` where unparsable); the same parser as the monitors' views."""
    if not values:
        return np.array([], dtype=np.int64)
    parsed = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601", utc=True, errors="coerce")
    return parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[us]").view(np.int64)


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError):
        return None


def _proba(outs: list) -> np.ndarray:
    """(n, k) float64 class probabilities of parsed outputs (NaN where absent or not a number)."""
    lists = [o.get("proba") if isinstance(o, dict) else None for o in outs]
    if lists and all(isinstance(p, list) for p in lists):
        try:
            arr = np.array(lists, dtype=float)
            if arr.ndim == 2:
                return arr
        except (TypeError, ValueError):
            pass
    k = max((len(p) for p in lists if isinstance(p, list)), default=0)
    arr = np.full((len(outs), k), np.nan)
    for r, p in enumerate(lists):
        if isinstance(p, list):
            for c, x in enumerate(p):
                if isinstance(x, (int, float)) and not isinstance(x, bool):
                    arr[r, c] = float(x)
    return arr


def _decision_chunk(grp: str, start: int, stop: int, rows: list[tuple[int, dict]], private: dict[int, dict]) -> list[ChunkRow]:
    index = np.array([i for i, _ in rows], dtype=np.int64)
    outs, committed = [], []
    for i, o in rows:
        out = o.get("output")
        committed.append(out is None)
        if out is None:
            raw = private.get(i, {}).get("output")
            out = None if raw is None else _loads(raw)
        outs.append(out)
    labels = [o.get("label") if isinstance(o, dict) else None for o in outs]
    available = np.zeros(len(rows), dtype=bool)
    inputs: list[dict] = []
    for k, (i, _) in enumerate(rows):
        raw = private.get(i, {}).get("input")
        if raw is None:
            inputs.append({})
            continue
        available[k] = True
        v = _loads(raw)
        inputs.append(v if isinstance(v, dict) else {})
    names = list(dict.fromkeys(name for d in inputs for name in d))
    cols = {"index": Column("i8", index), "time": Column("i8", _times([o.get("time") for _, o in rows])),
            "committed": Column("b1", np.array(committed, dtype=bool)), "label": encode_values(labels),
            "proba": Column("f8", _proba(outs)), "input.available": Column("b1", available)}
    for name in names:
        try:
            values = [d[name] for d in inputs]
        except KeyError:
            values = [d.get(name) for d in inputs]
        cols["in:" + name] = encode_values(values)
    return [ChunkRow(grp, start, stop, name, encode(col)) for name, col in cols.items()]


def _outcome_chunk(start: int, stop: int, rows: list[tuple[int, dict]], private: dict[int, dict]) -> list[ChunkRow]:
    committed = ["outcome" not in o for _, o in rows]
    have, values = [], []
    for (i, o), c in zip(rows, committed):
        if not c:
            have.append(True)
            values.append(o["outcome"])
            continue
        raw = private.get(i, {}).get("outcome")
        have.append(raw is not None)
        values.append(None if raw is None else _loads(raw))
    cols = {"decision": Column("i8", np.array([o["decision"] for _, o in rows], dtype=np.int64)),
            "index": Column("i8", np.array([i for i, _ in rows], dtype=np.int64)),
            "time": Column("i8", _times([o.get("time") or "" for _, o in rows])),
            "committed": Column("b1", np.array(committed, dtype=bool)), "have": Column("b1", np.array(have, dtype=bool)),
            "value": encode_values(values)}
    return [ChunkRow("o", start, stop, name, encode(col)) for name, col in cols.items()]


def build(store: Any, start: int, stop: int) -> list[ChunkRow]:
    """Decode entries [start, stop) of ``store`` (a ``LogStore``) into chunk rows (nothing is stored)."""
    decisions: dict[str, list[tuple[int, dict]]] = {}
    outcomes: list[tuple[int, dict]] = []
    metrics: list = []
    for idx, kind, data in store.entries_of_types(["decision", "outcome", "metric"], start, stop):
        o = _loads(data)
        if not isinstance(o, dict):
            continue
        if kind == "decision":
            decisions.setdefault(decision_group(o.get("deployment"), o.get("model")), []).append((idx, o))
        elif kind == "outcome":
            if type(o.get("decision")) is int:
                outcomes.append((idx, o))
        else:
            metrics.append([idx, o])
    private: dict[int, dict[str, bytes]] = {}
    if decisions or outcomes:
        for idx, kind, value in store.private_values_between(start, stop, ["input", "output", "outcome"]):
            private.setdefault(idx, {})[kind] = value
    rows: list[ChunkRow] = []
    for grp, items in decisions.items():
        rows.extend(_decision_chunk(grp, start, stop, items, private))
    if outcomes:
        rows.extend(_outcome_chunk(start, stop, outcomes, private))
    if metrics:
        rows.append(ChunkRow("m", start, stop, "json", encode(Column("json", metrics))))
    return rows


def refresh(store: Any, upto: int | None = None) -> int:
    """Bring ``store``'s columnar copy up to ``upto`` entries (default: the log's size); returns the built size.

    Raises:
        StorageError: the back end failed.
    """
    target = store.size() if upto is None else upto
    cs = store.columnar
    built, _ = cs.state()
    while built < target:
        stop = min(target, built + PIECE_ENTRIES)
        if not cs.put(built, stop, build(store, built, stop)):
            built, _ = cs.state()  # another process built this piece meanwhile
            continue
        built = stop
    return built


# ------------------------------------------------------------------ erasure
def scrub(rows: Sequence[ChunkRow], erased: Iterable[tuple[int, str]]) -> list[ChunkRow]:
    """The rows among ``rows`` that change when the private values ``(entry index, kind)`` are erased, changed.

    An erased input nulls every ``in:`` column of its decision and clears ``input.available``; an erased output
    nulls ``label`` and ``proba``; an erased outcome clears ``have`` and nulls ``value``. ``cat`` dictionaries
    are rebuilt without values no row uses any more.
    """
    by_kind: dict[str, set[int]] = {}
    for idx, kind in erased:
        if kind in _KINDS_OF:
            by_kind.setdefault(kind, set()).add(int(idx))
    if not by_kind:
        return []
    chunks: dict[tuple[str, int], dict[str, ChunkRow]] = {}
    for r in rows:
        chunks.setdefault((r.grp, r.start), {})[r.name] = r
    changed: list[ChunkRow] = []
    for (grp, _), cols in chunks.items():
        if "index" not in cols:
            continue
        index = decode(cols["index"].data).data
        kinds = ("outcome",) if grp == "o" else ("input", "output") if is_decision_group(grp) else ()
        for kind in kinds:
            wanted = np.array(sorted(by_kind.get(kind, ())), dtype=np.int64)
            if not len(wanted):
                continue
            pos = np.searchsorted(index, wanted)
            ok = pos < len(index)
            pos = pos[ok][index[pos[ok]] == wanted[ok]]
            if not len(pos):
                continue
            if kind == "input":
                names = [n for n in cols if n.startswith("in:") or n == "input.available"]
            elif kind == "output":
                names = [n for n in ("label", "proba") if n in cols]
            else:
                names = [n for n in ("have", "value") if n in cols]
            for name in names:
                row = cols[name]
                col = decode(row.data)
                data = np.array(col.data, copy=True)
                if col.kind == "b1":
                    data[pos] = False
                elif col.kind in ("num", "f8"):
                    data[pos] = np.nan
                elif col.kind == "cat":
                    data[pos] = -1
                else:
                    continue
                new = Column(col.kind, data, col.values, col.ints)
                if col.kind == "cat":
                    new = _compact(new)
                cols[name] = ChunkRow(row.grp, row.start, row.stop, row.name, encode(new))
                changed.append(cols[name])
    latest: dict[tuple[str, int, str], ChunkRow] = {(r.grp, r.start, r.name): r for r in changed}
    return list(latest.values())


# ------------------------------------------------------------------ reading
@dataclass
class Chunk:
    """One chunk of a group as read: its first entry, its rows and its decoded columns by name."""

    start: int
    rows: int
    cols: dict[str, Column]


@dataclass
class Columns:
    """What ``read`` returns: per group, its chunks in log order; ``upto`` the built size read to; ``erasures`` the
    scrub count at that time; ``rows_read`` decision and outcome rows decoded (by this read and those it extends)."""

    groups: dict[str, list[Chunk]]
    upto: int
    erasures: int
    rows_read: int = 0

    def extend(self, more: Columns) -> None:
        """Append a later read's chunks (``read(since=self.upto)``)."""
        for grp, chunks in more.groups.items():
            self.groups.setdefault(grp, []).extend(chunks)
        self.upto, self.erasures = more.upto, more.erasures
        self.rows_read += more.rows_read


def read(store: Any, *, since: int = 0, refresh_first: bool = True, names: Sequence[str] | None = None) -> Columns:
    """The columnar copy's chunks that start at or after ``since`` (building it up to the log's size first).

    Args:
        store: a ``LogStore``.
        since: read only chunks of entries from here on (a cursor: a previous read's ``upto``).
        refresh_first: build what is missing first.
        names: only these columns (``index`` is always read).

    Raises:
        StorageError: the back end failed.
        ValueError: a stored column is damaged.
    """
    cs = store.columnar
    if refresh_first:
        refresh(store)
    upto, erasures = cs.state()
    groups: dict[str, list[Chunk]] = {}
    rows_read = 0
    if names is not None:
        names = list(dict.fromkeys(["index", *names]))
    for r in cs.chunks(since, upto, names):
        chunks = groups.setdefault(r.grp, [])
        if not chunks or chunks[-1].start != r.start:
            chunks.append(Chunk(r.start, 0, {}))
        col = decode(r.data)
        chunks[-1].cols[r.name] = col
        if r.name in ("index", "json"):
            chunks[-1].rows = len(col)
            rows_read += len(col) if r.name == "index" else 0
    return Columns(groups, upto, erasures, rows_read)


def plain(chunks: Sequence[Chunk], name: str, dtype: Any, fill: Any) -> np.ndarray:
    """An ``i8``/``b1`` column over all chunks (``fill`` where a chunk lacks it)."""
    out = [np.asarray(c.cols[name].data) if name in c.cols else np.full(c.rows, fill, dtype=dtype) for c in chunks]
    return np.concatenate(out).astype(dtype, copy=False) if out else np.array([], dtype=dtype)


def matrix(chunks: Sequence[Chunk], name: str) -> np.ndarray:
    """An ``f8`` (n, k) column over all chunks, padded with NaN to the widest chunk."""
    parts = [c.cols.get(name) for c in chunks]
    k = max((p.data.shape[1] for p in parts if p is not None and p.data.ndim == 2), default=0)
    if parts and all(p is not None and p.data.ndim == 2 and p.data.shape[1] == k for p in parts):
        return np.concatenate([p.data for p in parts])
    out = []
    for c, p in zip(chunks, parts):
        block = np.full((c.rows, k), np.nan)
        if p is not None and p.data.ndim == 2:
            block[:, : p.data.shape[1]] = p.data
        out.append(block)
    return np.concatenate(out) if out else np.zeros((0, k))


def as_float(chunks: Sequence[Chunk], name: str, convert: Any) -> tuple[np.ndarray, np.ndarray]:
    """A column as float64 (NaN for null) and a mask of values present but not numbers, over all chunks.

    ``convert(values) -> (float64, invalid)`` turns a ``cat`` chunk's dictionary into numbers (the caller's rule
    for strings, booleans and the like).
    """
    arrs, bads = [], []
    for c in chunks:
        p = c.cols.get(name)
        if p is None:
            arrs.append(np.full(c.rows, np.nan))
            bads.append(np.zeros(c.rows, dtype=bool))
        elif p.kind == "num":
            arrs.append(p.data)
            bads.append(np.zeros(c.rows, dtype=bool))
        else:
            u_arr, u_bad = convert(p.values) if p.values else (np.array([]), np.array([], dtype=bool))
            u_arr = np.append(np.asarray(u_arr, dtype=float), np.nan)
            u_bad = np.append(np.asarray(u_bad, dtype=bool), False)
            arrs.append(u_arr[p.data])  # code -1 takes the appended NaN / False
            bads.append(u_bad[p.data])
    if not arrs:
        return np.array([], dtype=float), np.array([], dtype=bool)
    return np.concatenate(arrs).astype(float, copy=False), np.concatenate(bads)


def _objects(values: list) -> np.ndarray:
    out = np.empty(len(values) + 1, dtype=object)
    for k, v in enumerate(values):
        out[k] = v
    out[len(values)] = None
    return out


def _num_objects(p: Column) -> np.ndarray:
    """A ``num`` column as Python ``int`` / ``float`` / None objects (few distinct integers: through a table)."""
    data = p.data
    nan = np.isnan(data)
    if p.ints and len(data):
        valid = data[~nan].astype(np.int64)
        lo, hi = (int(valid.min()), int(valid.max())) if len(valid) else (0, 0)
        if hi - lo <= 65_536:
            table = _objects(list(range(lo, hi + 1)))  # the last slot is None
            at = np.where(nan, hi - lo + 1, np.nan_to_num(data, nan=lo) - lo).astype(np.int64)
            return table[at]
    vals = [None if m else (int(v) if p.ints else v) for v, m in zip(data.tolist(), nan.tolist())]
    obj = np.empty(len(vals), dtype=object)
    obj[:] = vals
    return obj


def as_objects(chunks: Sequence[Chunk], name: str) -> np.ndarray:
    """A column as an object array of the JSON values (None for null; JSON integers as ``int``), over all chunks."""
    arrs = []
    for c in chunks:
        p = c.cols.get(name)
        if p is None:
            arrs.append(np.full(c.rows, None, dtype=object))
        elif p.kind == "cat":
            arrs.append(_objects(p.values)[p.data])
        else:
            arrs.append(_num_objects(p))
    return np.concatenate(arrs) if arrs else np.array([], dtype=object)
