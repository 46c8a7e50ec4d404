"""Flags and their ratings, as entries on the log.

A **flag** is a report about a decision or a model: "wrong outcome", "right
answer for the wrong reasons", "unfair", "harmful", "privacy" or "other"
(``glasslog.records.FLAG_CATEGORIES``). The subject of a decision flags
it with their receipt token; anyone flags a model or a decision of a
public-service deployment; developers, researchers, supervisors and the
operator flag with their keys. A **rating** is someone else's view of a flag:
helpful, somewhat helpful or not helpful. Flags are ranked by the bridging
model of Community Notes (``glasslog.oversight.bridging``): the flags that
raters who usually disagree both find helpful come first.

What the log holds. A ``flag`` entry has ``time``, ``category``, ``by_role``,
``model`` (the flagged model, or the model that made the flagged decision),
``decision`` (the flagged output's index, for a flag about one decision or
one generation: the entry's type says which; ``Flag.kind``),
``reporter`` and, if the flag has a text, ``text``: the commitment to the text,
which is kept beside the log (private value of kind ``flag-text``) so that it
can be moderated or erased (``Ledger.erase_private``) while every hash and
proof stays valid. A ``rating`` entry has ``time``, ``flag``, ``rating`` and
``rater``.

``reporter`` and ``rater`` are pseudonyms: ``"sha256:" + hex(HMAC-SHA256(key,
purpose || 0x00 || identity))`` with a random 32-byte key kept beside the log
(table ``oversight_secret``), where the identity is the decision a receipt
token opens (``subject:decision:<i>``), an API key id (``key:<id>``), a client
address (``address:<ip>``) or a name at the log's host (``host:<name>``). The
same person gets the same pseudonym each time, so the abuse limits below can
be enforced, yet nobody without the key can tell who it is.

Abuse limits:

- one flag per reporter per target (a decision, or a model as a whole): a
  subject flags their decision once; a second flag is refused
  (``DuplicateFlagError``, naming the first);
- duplicates are merged: flags of the same target and category by different
  reporters form one item, led by the earliest (the *primary*); the others
  count as further reporters, and ratings of any of them count for the primary;
- nobody rates a flag they (or a duplicate they filed) reported
  (``OwnFlagError``); a rater's later rating of a flag replaces their earlier one,
  and a rating equal to the rater's current one appends nothing;
- rate limits per key or client address are the server's
  (``glasslog.server.routes.flags``).

Who sees a flag's text: everyone, for flags about a model and about decisions
of public-service deployments (flags are public reports; the text is limited
to ``MAX_TEXT_CHARS`` characters and can be erased by a supervisor); for flags
about a decision of a private deployment, which its subject may describe in
personal terms, only the reporter, supervisors and the operator. Everything
else about every flag (category, target, time, ratings, status) is public, as
it is on the log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field

from ..access.policy import may_read_flag_text
from ..errors import BadInputError, ConflictError
from ..ledger import EntryError, Ledger, utc_now
from ..ledger.commitments import commit
from ..ledger.log import PrivateValue
from ..records import FLAG_CATEGORIES, FLAG_ROLES, RATINGS, flag_entry, rating_entry
from ..registry import Deployments, Registry, RegistryError
from ..storage import WriteTx
from .bridging import BridgingParams, FlagScore, ScoreBoard, score_flags

__all__ = [
    "FLAG_TEXT_KIND",
    "FLAGGABLE_OUTPUTS",
    "MAX_TEXT_CHARS",
    "FlagError",
    "DuplicateFlagError",
    "OwnFlagError",
    "UnknownFlagError",
    "Flag",
    "Rating",
    "FlagAdded",
    "RatingAdded",
    "FlagSummary",
    "Flags",
    "subject_identity",
    "key_identity",
    "address_identity",
    "host_identity",
]

FLAG_TEXT_KIND = "flag-text"
"""Kind of the private value holding a flag's text (beside the log)."""

MAX_TEXT_CHARS = 1000
"""Longest flag text, in characters (Unicode code points) after trimming."""

FLAGGABLE_OUTPUTS = ("decision", "generation")
"""Types of the entries a flag may be about (its ``decision`` field): a decision, or a generative model's output."""



class FlagError(BadInputError):
    """A flag or rating is invalid; ``field`` names the offending field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(f"{field}: {message}" if field else message)
        self.detail = message
        self.field = field


class DuplicateFlagError(ConflictError, FlagError):
    """This reporter already flagged this target; ``existing`` is that flag's index."""

    def __init__(self, message: str, existing: int):
        super().__init__(message, "decision")
        self.existing = existing


class OwnFlagError(FlagError):
    """A reporter tried to rate their own flag (or one their own flag duplicates)."""


class UnknownFlagError(FlagError, LookupError):
    """No flag at that index."""


def subject_identity(decision_index: int) -> str:
    """Identity of the subject holding the receipt token of decision ``decision_index``."""
    return f"subject:decision:{int(decision_index)}"


def key_identity(key_id: str) -> str:
    """Identity of an API key's holder."""
    return f"key:{key_id}"


def address_identity(address: str) -> str:
    """Identity of an anonymous client, by network address."""
    return f"address:{address}"


def host_identity(name: str) -> str:
    """Identity of someone acting at the log's host (the CLI)."""
    return f"host:{name}"


@dataclass(frozen=True)
class Flag:
    """A flag as logged.

    Attributes:
        index: the flag entry's index.
        time: RFC 3339 UTC time of the entry.
        category: one of ``FLAG_CATEGORIES``.
        by_role: the reporter's role.
        model: fingerprint of the flagged model (or of the model that made the flagged decision).
        decision: index of the flagged decision, None for a flag about the model as a whole.
        deployment: the flagged decision's deployment (None for model flags).
        reporter: the reporter's pseudonym (None if the entry has none).
        text_commitment: commitment to the text beside the log (None without text).
        kind: the flagged entry's type (``decision`` or ``generation``; None for model flags).
    """

    index: int
    time: str
    category: str
    by_role: str
    model: str
    decision: int | None
    deployment: str | None
    reporter: str | None
    text_commitment: str | None
    kind: str | None = None

    @property
    def target(self) -> tuple[str, int | None]:
        return (self.model, self.decision)

    @property
    def generation(self) -> int | None:
        """The flagged generation's index (None unless the flag is about a generation)."""
        return self.decision if self.kind == "generation" else None


@dataclass(frozen=True)
class Rating:
    """A rating entry: ``index``, ``time``, ``flag`` (index), ``rating`` (helpful / somewhat / not-helpful), ``rater`` (pseudonym)."""

    index: int
    time: str
    flag: int
    rating: str
    rater: str


@dataclass(frozen=True)
class FlagAdded:
    """What ``Flags.add`` appended: the flag, and the primary it was merged into (None if it is one)."""

    flag: Flag
    duplicate_of: int | None
    tree_size: int
    checkpoint: str


@dataclass(frozen=True)
class RatingAdded:
    """What ``Flags.rate`` appended; ``replaces`` is the rater's earlier rating of that flag, if any.

    ``unchanged``: the rater had already given this rating, so nothing was appended and ``rating`` is that
    existing entry (``replaces`` is None; ``tree_size`` and ``checkpoint`` are the log's current ones).
    """

    rating: Rating
    replaces: int | None
    tree_size: int
    checkpoint: str
    unchanged: bool = False


@dataclass(frozen=True)
class FlagSummary:
    """A primary flag with its merged duplicates, ratings and score.

    Attributes:
        flag: the primary flag.
        duplicates: indexes of flags merged into it (same target and category, other reporters).
        score: its ``FlagScore`` (status, rank, counts, intercept / factor or Wilson bound).
    """

    flag: Flag
    duplicates: tuple[int, ...]
    score: FlagScore

    @property
    def reporters(self) -> int:
        return 1 + len(self.duplicates)


@dataclass
class _State:
    upto: int = 0
    flags: dict[int, Flag] = field(default_factory=dict)
    ratings: list[Rating] = field(default_factory=list)
    primary: dict[tuple, int] = field(default_factory=dict)  # (model, decision, category) -> primary index
    groups: dict[int, list[int]] = field(default_factory=dict)  # primary index -> indexes merged into it
    by_target: dict[tuple, dict[str, int]] = field(default_factory=dict)  # (model, decision) -> reporter -> index


def _check_text(text: str | None) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise FlagError("must be text", "text")
    text = text.strip()
    if not text:
        return None
    if len(text) > MAX_TEXT_CHARS:
        raise FlagError(f"is {len(text)} characters; the limit is {MAX_TEXT_CHARS}", "text")
    bad = next((c for c in text if not (c.isprintable() or c in "\n\t")), None)
    if bad is not None:
        raise FlagError(f"must be printable text (line breaks allowed); it holds the control character U+{ord(bad):04X}", "text")
    return text


class Flags:
    """Flags and ratings on one log.

    Args:
        ledger: the log.
        registry, deployments: the log's registry and deployments (made from the ledger if not given).
        params: bridging model parameters (the Community Notes scorer's by default).
    """

    def __init__(self, ledger: Ledger, registry: Registry | None = None, deployments: Deployments | None = None,
                 params: BridgingParams = BridgingParams()):
        self.ledger = ledger
        self.registry = registry or Registry(ledger)
        self.deployments = deployments or Deployments(ledger)
        self.params = params
        self._state = _State()
        self._board: tuple[int, tuple[FlagSummary, ...], ScoreBoard] | None = None
        self._key: bytes | None = None

    # ------------------------------------------------------------ pseudonyms
    def _secret(self) -> bytes:
        if self._key is None:
            self._key = self.ledger.store.secret("pseudonym", secrets.token_bytes(32))
        return self._key

    def pseudonym(self, purpose: str, identity: str) -> str:
        """``sha256:<hex>`` pseudonym of ``identity`` for ``purpose`` (``reporter`` or ``rater``), keyed by this log's secret."""
        mac = hmac.new(self._secret(), purpose.encode() + b"\x00" + identity.encode("utf-8"), hashlib.sha256)
        return "sha256:" + mac.hexdigest()

    # ------------------------------------------------------------ reading
    def _refresh(self) -> _State:
        st = self._state
        size = self.ledger.size
        if st.upto >= size:
            return st
        rows = self.ledger.entries_of_types(("flag", "rating"), st.upto, size)
        for idx, kind, data in rows:
            obj = json.loads(data)
            if kind == "flag":
                decision = obj.get("decision")
                deployment = kind_of = None
                if decision is not None:
                    try:
                        flagged = json.loads(self.ledger.entry(decision))
                        deployment, kind_of = flagged.get("deployment"), flagged.get("type")
                    except IndexError:
                        deployment = None
                fl = Flag(idx, obj["time"], obj["category"], obj["by_role"], obj["model"], decision, deployment,
                          obj.get("reporter"), obj.get("text"), kind_of)
                st.flags[idx] = fl
                primary = st.primary.setdefault((fl.model, fl.decision, fl.category), idx)
                st.groups.setdefault(primary, [])
                if primary != idx:
                    st.groups[primary].append(idx)
                if fl.reporter is not None:
                    st.by_target.setdefault(fl.target, {}).setdefault(fl.reporter, idx)
            else:
                st.ratings.append(Rating(idx, obj["time"], obj["flag"], obj["rating"], obj["rater"]))
        st.upto = size
        return st

    def list(self) -> list[Flag]:
        """All flags, in log order (duplicates included)."""
        return list(self._refresh().flags.values())

    def get(self, index: int) -> Flag:
        """The flag at entry ``index``.

        Raises:
            UnknownFlagError: no entry there, or it is not a flag.
        """
        st = self._refresh()
        if not isinstance(index, int) or isinstance(index, bool) or index not in st.flags:
            kind = None
            if isinstance(index, int) and 0 <= index < self.ledger.size:
                kind = json.loads(self.ledger.entry(index)).get("type")
            raise UnknownFlagError(f"entry {index} is a {kind} entry, not a flag" if kind else f"no flag at entry {index}", "flag")
        return st.flags[index]

    def primary_of(self, index: int) -> int:
        """Index of the primary flag that flag ``index`` is merged into (itself if it is one)."""
        fl = self.get(index)
        return self._state.primary[(fl.model, fl.decision, fl.category)]

    def duplicates_of(self, index: int) -> tuple[int, ...]:
        """Indexes of the flags merged into primary ``index`` (empty for a flag that is not a primary)."""
        self.get(index)
        return tuple(self._state.groups.get(index, ()))

    def latest_ratings(self) -> dict[tuple[int, str], Rating]:
        """Each rater's latest rating of each primary flag, as ``{(primary index, rater): Rating}``."""
        st = self._refresh()
        out: dict[tuple[int, str], Rating] = {}
        for r in st.ratings:
            fl = st.flags.get(r.flag)
            if fl is None:
                continue  # a rating that names no flag (cannot be appended through this module)
            out[(st.primary[(fl.model, fl.decision, fl.category)], r.rater)] = r
        return out

    def ratings_of(self, index: int) -> list[Rating]:
        """The latest rating of each rater for the item led by flag ``index`` (its primary), oldest first."""
        primary = self.primary_of(index)
        return sorted((r for (p, _), r in self.latest_ratings().items() if p == primary), key=lambda r: r.index)

    def is_reporter(self, index: int, identity: str) -> bool:
        """True if ``identity`` reported flag ``index`` or a flag merged with it."""
        pseudonym = self.pseudonym("reporter", identity)
        primary = self.primary_of(index)
        return any(self._state.flags[i].reporter == pseudonym for i in (primary, *self.duplicates_of(primary)))

    # ------------------------------------------------------------ text
    def text(self, index: int) -> tuple[str, str | None]:
        """``(state, text)`` of a flag's text: ``("none", None)``, ``("shown", text)`` or ``("erased", None)``."""
        fl = self.get(index)
        if fl.text_commitment is None:
            return ("none", None)
        opened = self.ledger.private_value(fl.text_commitment)
        if opened is None:
            return ("erased", None)
        return ("shown", json.loads(opened[2]))

    def erasure(self, index: int) -> tuple[str, str] | None:
        """``(erased_at, reason)`` if the flag's text was erased, else None."""
        fl = self.get(index)
        if fl.text_commitment is None:
            return None
        return self.ledger.erasure_of(fl.text_commitment)

    def may_read_text(self, index: int, role: str, own: bool) -> bool:
        """True if a reader of ``role`` (``own``: they reported it) may read the flag's text (see the module docstring)."""
        fl = self.get(index)
        d = self.deployments.find(fl.deployment) if fl.deployment else None
        return may_read_flag_text(role, own, fl.decision is not None, bool(d is not None and d.public))

    def erase_text(self, index: int, reason: str) -> bool:
        """Erase a flag's text beside the log (moderation or an erasure request); the entry and its commitment stay.

        Returns False if the flag has no text or it was erased already.

        Raises:
            UnknownFlagError: no such flag.
            FlagError: no reason (field ``reason``).
        """
        if not isinstance(reason, str) or not reason.strip():
            raise FlagError("an erasure needs a reason", "reason")
        fl = self.get(index)
        if fl.text_commitment is None:
            return False
        return self.ledger.erase_private(fl.text_commitment, reason.strip())

    # ------------------------------------------------------------ writing
    def add(self, *, category: str, by_role: str, reporter: str, model: str | None = None, decision: int | None = None,
            text: str | None = None) -> FlagAdded:
        """Append a flag entry (and its text beside the log), in one transaction.

        Args:
            category: one of ``FLAG_CATEGORIES``.
            by_role: the reporter's role (one of ``FLAG_ROLES``).
            reporter: the reporter's identity (``subject_identity`` etc.); only its pseudonym is logged.
            model: the flagged model's fingerprint (or a unique prefix of 12+ hex digits); may be
                omitted for a decision, whose model is taken from the decision entry.
            decision: index of the flagged decision or generation (``FLAGGABLE_OUTPUTS``), or None to flag the
                model as a whole.
            text: what is wrong, at most ``MAX_TEXT_CHARS`` characters (line breaks allowed).

        Raises:
            FlagError: unknown category or role, unknown model, no such decision, a model that is not
                the decision's, or bad text (``field`` names it). Nothing is written.
            DuplicateFlagError: this reporter already flagged this target. Nothing is written.
        """
        if category not in FLAG_CATEGORIES:
            raise FlagError(f"must be one of {', '.join(FLAG_CATEGORIES)}, got {category!r}", "category")
        if by_role not in FLAG_ROLES:
            raise FlagError(f"must be one of {', '.join(FLAG_ROLES)}, got {by_role!r}", "by_role")
        if not isinstance(reporter, str) or not reporter:
            raise FlagError("a flag needs the reporter's identity", "reporter")
        if decision is not None:
            if not isinstance(decision, int) or isinstance(decision, bool) or decision < 0:
                raise FlagError("must be a decision's entry index (>= 0)", "decision")
            size = self.ledger.size
            if decision >= size:
                raise FlagError(f"no entry {decision} in the log (size {size})", "decision")
            entry = json.loads(self.ledger.entry(decision))
            what = entry.get("type")
            if what not in FLAGGABLE_OUTPUTS:
                raise FlagError(f"entry {decision} is a {what} entry, not a decision or a generation", "decision")
            if not entry.get("model"):
                raise FlagError(f"{what} {decision} names no registered model (a generation reported for a model that"
                                " is not registered): flag the deployment's operator instead", "decision")
            if model is not None and model != entry["model"]:
                raise FlagError(f"{what} {decision} was made by model {entry['model']}, not {model}", "model")
            model = entry["model"]
        elif model is None:
            raise FlagError("give the model flagged, or the decision", "model")
        else:
            try:
                model = self.registry.get(model).fingerprint
            except RegistryError as exc:
                raise FlagError(str(exc), "model") from None
        text = _check_text(text)
        who = self.pseudonym("reporter", reporter)
        target = (model, decision)
        existing = self._refresh().by_target.get(target, {}).get(who)
        if existing is not None:
            raise DuplicateFlagError(self._duplicate_message(existing, decision), existing)
        private: list[PrivateValue] = []
        commitment = None
        if text is not None:
            commitment, salt, value = commit(text)
            private.append(PrivateValue(0, FLAG_TEXT_KIND, commitment, salt, value))
        try:
            obj = flag_entry(time=utc_now(), category=category, by_role=by_role, model=model, reporter=who,
                             decision=decision, text=commitment)
        except EntryError as exc:
            raise FlagError(exc.detail, exc.field) from None

        def unique(tx: WriteTx, first: int) -> None:
            # Inside the append's transaction (serialised across processes): no flag by this
            # reporter of this target may have been appended since the check above.
            start = self._state.upto
            for idx, _, data in tx.entries_of_types(("flag",), start, first):
                o = json.loads(data)
                if o.get("reporter") == who and (o["model"], o.get("decision")) == target:
                    raise DuplicateFlagError(self._duplicate_message(idx, decision), idx)

        try:
            result = self.ledger.append([obj], private_values=private, within=unique)
        except EntryError as exc:
            raise FlagError(exc.detail, exc.field) from None
        st = self._refresh()
        fl = st.flags[result.first_index]
        primary = st.primary[(fl.model, fl.decision, fl.category)]
        return FlagAdded(fl, None if primary == fl.index else primary, result.tree_size, result.checkpoint)

    @staticmethod
    def _duplicate_message(existing: int, decision: int | None) -> str:
        what = f"decision {decision}" if decision is not None else "this model"
        return f"you already flagged {what} (flag {existing}); one flag per person per decision or model"

    def rate(self, flag: int, rating: str, rater: str) -> RatingAdded:
        """Append a rating of a flag (of its primary, if the flag was merged into another).

        A rating equal to the rater's current rating of that flag appends nothing: the result has
        ``unchanged=True`` and the existing rating.

        Args:
            flag: the flag's entry index.
            rating: ``helpful``, ``somewhat`` or ``not-helpful``.
            rater: the rater's identity (``subject_identity`` etc.); only its pseudonym is logged.

        Raises:
            UnknownFlagError: no such flag.
            FlagError: unknown rating (field ``rating``).
            OwnFlagError: the rater reported this flag or one merged with it.
        """
        if rating not in RATINGS:
            raise FlagError(f"must be one of {', '.join(RATINGS)}, got {rating!r}", "rating")
        if not isinstance(rater, str) or not rater:
            raise FlagError("a rating needs the rater's identity", "rater")
        primary = self.primary_of(flag)
        if self.is_reporter(primary, rater):
            raise OwnFlagError("you reported this flag (or one merged with it); others rate it", "flag")
        who = self.pseudonym("rater", rater)
        previous = self.latest_ratings().get((primary, who))
        if previous is not None and previous.rating == rating:
            size = self.ledger.signed_size()
            return RatingAdded(previous, None, size, self.ledger.checkpoint(), unchanged=True)
        obj = rating_entry(time=utc_now(), flag=primary, rating=rating, rater=who)
        result = self.ledger.append([obj])
        self._refresh()
        return RatingAdded(Rating(result.first_index, obj["time"], primary, rating, who),
                           None if previous is None else previous.index, result.tree_size, result.checkpoint)

    # ------------------------------------------------------------ ranking
    def board(self) -> tuple[tuple[FlagSummary, ...], ScoreBoard]:
        """All primary flags ranked by the bridging model (``glasslog.oversight.bridging.score_flags``).

        Returns:
            ``(summaries in rank order, the ScoreBoard)``. Cached until the log grows.
        """
        st = self._refresh()
        if self._board is not None and self._board[0] == st.upto:
            return self._board[1], self._board[2]
        primaries = sorted(st.groups)
        groups = st.groups
        ratings = [(p, rater, r.rating) for (p, rater), r in self.latest_ratings().items()]
        board = score_flags(primaries, ratings, self.params)
        summaries = tuple(FlagSummary(st.flags[s.flag], tuple(groups[s.flag]), s) for s in board.scores)
        self._board = (st.upto, summaries, board)
        return summaries, board

    def summary(self, index: int) -> FlagSummary:
        """The ranked summary of the item that flag ``index`` belongs to (its primary's)."""
        primary = self.primary_of(index)
        summaries, _ = self.board()
        return next(s for s in summaries if s.flag.index == primary)
