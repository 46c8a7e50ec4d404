"""Flags, ratings (the Community Notes bridging model) and triage: the scorer on synthetic
two-camp rater populations, flags and ratings as log entries with their abuse limits, erasure
of flag text, triage actions as entries (escalation suspends the model), and the HTTP API for
every role.

The log for the ledger and HTTP tests holds the German Credit scorecard (two registered
versions), a public-service deployment with six decisions and a private one with three, all
with subject ids and receipt tokens, logged through the HTTP API as the operator.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import optimize

from glasslog import capture
from glasslog.access import KeyStore
from glasslog.datasets import credit_model, german_credit_features, load_german_credit
from glasslog.ledger import Ledger, merkle
from glasslog.ledger.commitments import check_commitment
from glasslog.oversight import bridging
from glasslog.oversight.bridging import BridgingParams, score_flags, wilson_lower_bound
from glasslog.oversight.flags import (
    DuplicateFlagError,
    FlagError,
    Flags,
    OwnFlagError,
    UnknownFlagError,
    address_identity,
    host_identity,
    key_identity,
    subject_identity,
)
from glasslog.oversight.triage import Triage, TriageConflict, TriageError, UnknownItem
from glasslog.registry import ClaimedMetrics, ModelCard, Registry, fingerprint_frame
from glasslog.server import create_app
from glasslog.verify import audit_log


# ------------------------------------------------------------------ synthetic rater populations
def two_camps(seed: int, n_a: int = 30, n_b: int = 10, n_both: int = 5, n_a_only: int = 5, n_b_only: int = 3,
              n_spam: int = 15, p_rate: float = 0.75, p_both: float = 0.9):
    """Raters in two camps (A, the majority, and B); flags that both camps find helpful, that only one camp
    does, and that nobody does. Each rater rates each flag with probability ``p_rate``."""
    rng = np.random.default_rng(seed)
    raters = [("A", k) for k in range(n_a)] + [("B", k) for k in range(n_b)]
    kinds = ["both"] * n_both + ["A"] * n_a_only + ["B"] * n_b_only + ["spam"] * n_spam
    ratings = []
    for flag, kind in enumerate(kinds):
        for rater in raters:
            if rng.random() > p_rate:
                continue
            p = {"both": p_both, "spam": 0.1}.get(kind, 0.95 if rater[0] == kind else 0.05)
            x = rng.random()
            ratings.append((flag, rater, "helpful" if x < p else "somewhat" if x < p + 0.05 else "not-helpful"))
    return kinds, ratings


SEEDS = range(8)


@pytest.fixture(scope="module")
def boards():
    out = []
    for seed in SEEDS:
        kinds, ratings = two_camps(seed)
        out.append((kinds, ratings, score_flags(list(range(len(kinds))), ratings)))
    return out


def test_one_camp_flag_never_ranks_above_a_both_camps_flag(boards):
    wilson_inversions = 0
    for kinds, _, board in boards:
        by = board.by_flag()
        assert board.method == "bridging" and board.raters_in_model == 40 and board.flags_in_model == 28
        both = [by[i] for i, k in enumerate(kinds) if k == "both"]
        one_camp = [by[i] for i, k in enumerate(kinds) if k in ("A", "B")]
        assert max(s.rank for s in both) < min(s.rank for s in one_camp)
        assert min(s.intercept for s in both) > max(s.intercept for s in one_camp)
        # Camp A is three quarters of the raters: by raw helpful share, a flag only A likes can look
        # as good as one both camps support. The ranking must not fall for it; a plain average does.
        if max(s.wilson_lower_bound for s in one_camp) > min(s.wilson_lower_bound for s in both):
            wilson_inversions += 1
        # One-camp flags sit far out on the factor axis, camp A's on the negative side (the majority's, after
        # the scorer's sign identification), camp B's on the positive side.
        assert all(by[i].factor < -0.5 for i, k in enumerate(kinds) if k == "A")
        assert all(by[i].factor > 0.5 for i, k in enumerate(kinds) if k == "B")
    assert wilson_inversions >= 1, "the populations should fool a ranking by helpful share at least once"


def test_confirmed_needs_support_from_both_sides(boards):
    for kinds, ratings, board in boards:
        by = board.by_flag()
        status = {k: [by[i].status for i, kk in enumerate(kinds) if kk == k] for k in ("both", "A", "B", "spam")}
        assert status["both"].count("confirmed") >= 4
        assert "confirmed" not in status["A"] + status["B"] + status["spam"]
        assert status["spam"].count("not-helpful") >= 1 and "not-helpful" not in status["both"]
        for i, k in enumerate(kinds):
            s = by[i]
            if s.status == "confirmed":
                assert s.intercept >= 0.40 and abs(s.factor) <= 0.5 and s.net_minority_helpful >= 4 and s.ratings >= 5
            if k in ("A", "B"):
                assert s.net_minority_helpful == 0  # the other camp rates it net not helpful
        # Confirmed flags come first, not-helpful ones last.
        statuses = [s.status for s in board.scores]
        assert statuses == sorted(statuses, key=["confirmed", "needs-more-ratings", "not-helpful"].index)


def test_a_both_camps_flag_without_enough_minority_support_is_not_confirmed():
    kinds, ratings = two_camps(0)
    # Drop camp B's ratings of flag 0 (a both-camps flag) down to three helpful ones.
    kept = [r for r in ratings if not (r[0] == 0 and r[1][0] == "B")]
    kept += [(0, ("B", k), "helpful") for k in range(3)]
    by = score_flags(list(range(len(kinds))), kept).by_flag()
    assert by[0].net_minority_helpful == 3 and by[0].status == "needs-more-ratings"


def test_wilson_fallback_while_ratings_are_few():
    ratings = [(1, "r1", "helpful"), (1, "r2", "helpful"), (1, "r3", "helpful"),
               (2, "r1", "helpful"), (2, "r2", "not-helpful"),
               (3, "r4", "somewhat")]
    board = score_flags([1, 2, 3, 4], ratings)
    assert board.method == "wilson" and board.raters_in_model == 0
    by = board.by_flag()
    # 3 of 3 helpful: Wilson (1927) lower bound at z = 1.96.
    assert by[1].wilson_lower_bound == pytest.approx(0.438494, abs=1e-6)
    assert by[2].wilson_lower_bound == pytest.approx(0.094529, abs=1e-6)  # 1 of 2
    assert by[3].wilson_lower_bound == pytest.approx(0.054619, abs=1e-6)  # one "somewhat": half of 1
    assert by[4].wilson_lower_bound is None and by[4].ratings == 0
    assert [s.flag for s in board.scores] == [1, 2, 3, 4]
    # However well rated, nothing is confirmed by the fallback.
    assert {s.status for s in board.scores} == {"needs-more-ratings"} and {s.method for s in board.scores} == {"wilson"}
    assert (by[1].intercept, by[1].factor) == (None, None)


def test_wilson_lower_bound_known_values():
    assert wilson_lower_bound(0, 0) is None
    assert wilson_lower_bound(10, 10) == pytest.approx(0.722460, abs=1e-6)
    assert wilson_lower_bound(5, 10) == pytest.approx(0.236590, abs=1e-6)
    with pytest.raises(ValueError):
        wilson_lower_bound(11, 10)


def test_gradient_of_the_scorer_loss_is_exact():
    rng = np.random.default_rng(3)
    u, f = rng.integers(0, 6, 40), rng.integers(0, 5, 40)
    y = rng.choice([0.0, 0.5, 1.0], 40)
    theta = rng.normal(0, 0.3, 1 + 2 * 6 + 2 * 5)
    args = (u, f, y, 6, 5, 0.15, 0.03, True)
    err = optimize.check_grad(lambda t: bridging._loss_and_grad(t, *args)[0], lambda t: bridging._loss_and_grad(t, *args)[1], theta)
    assert err < 1e-6


def test_scoring_is_deterministic_and_validates_input():
    kinds, ratings = two_camps(5)
    a = score_flags(list(range(len(kinds))), ratings)
    b = score_flags(list(range(len(kinds))), list(reversed(ratings)))
    assert [s.flag for s in a.scores] == [s.flag for s in b.scores]
    assert [s.intercept for s in a.scores] == pytest.approx([s.intercept for s in b.scores], abs=1e-5)
    with pytest.raises(ValueError, match="rating must be one of"):
        score_flags([1], [(1, "r", "great")])
    with pytest.raises(ValueError, match="twice"):
        score_flags([1], [(1, "r", "helpful"), (1, "r", "helpful")])
    with pytest.raises(ValueError, match="unknown flag"):
        score_flags([1], [(2, "r", "helpful")])
    assert BridgingParams().to_dict()["intercept_lambda"] == 0.15 and BridgingParams().factor_lambda == 0.03


# ------------------------------------------------------------------ a log with decisions, over HTTP
DEP_PUB = "city.example/benefits"
DEP_PRIV = "bank.example/credit"


def _card(X, rows, version: str) -> ModelCard:
    return ModelCard(
        name="German Credit scorecard (flag tests)", version=version, provider="tests", intended_use="Flag tests.",
        features=german_credit_features(X), output={"classes": [0, 1], "positive": 1},
        training_data_fingerprint=fingerprint_frame(X.iloc[rows]),
        claimed=ClaimedMetrics({"accuracy": 0.7}, fingerprint_frame(X.iloc[rows[:50]]), 50), disclosure_policy="public")


@dataclass
class World:
    dir: Path
    client: TestClient
    tokens: dict[str, str | None]
    key_ids: dict[str, str]
    model: str
    other_model: str
    pub: list[int]  # public-service decisions
    pub_tokens: list[str]
    priv: list[int]  # private decisions
    priv_tokens: list[str]
    X: object = None

    def h(self, role: str) -> dict:
        tok = self.tokens[role]
        return {} if tok is None else {"Authorization": f"Bearer {tok}"}


ROLES = ("public", "subject", "developer", "researcher", "supervisor", "operator", "revoked", "malformed")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> World:
    d = tmp_path_factory.mktemp("flags") / "log"
    X, y = load_german_credit()
    lg = Ledger.create(d, "bank.example/flag-tests")
    reg = Registry(lg)
    rows = list(range(0, 400))
    m1 = reg.register(credit_model(X, 0).fit(X.iloc[rows], y.iloc[rows]), _card(X, rows, "1"))
    rows2 = list(range(400, 800))
    m2 = reg.register(credit_model(X, 0).fit(X.iloc[rows2], y.iloc[rows2]), _card(X, rows2, "2"))
    ks = KeyStore(lg)
    tokens: dict[str, str | None] = {"public": None, "malformed": "glk_nope"}
    key_ids = {}
    for role, key_role in (("operator", "operator"), ("supervisor", "supervisor"), ("researcher", "researcher"),
                           ("developer", "developer"), ("revoked", "researcher")):
        rec, tok = ks.create(key_role, f"tests: {role}", [DEP_PRIV] if role == "developer" else [])
        tokens[role], key_ids[role] = tok, rec.key_id
    ks.revoke(key_ids["revoked"])
    lg.close()
    client = TestClient(create_app(d))
    op = {"Authorization": f"Bearer {tokens['operator']}"}
    for name, vis in ((DEP_PUB, "public-service"), (DEP_PRIV, "private")):
        r = client.post("/v1/deployments", headers=op, json={"name": name, "visibility": vis})
        assert r.status_code == 201, r.text

    def decide(dep, idx):
        r = client.post("/v1/decisions", headers=op, json={
            "model": m1.fingerprint, "deployment": dep,
            "rows": [{"input": json.loads(X.iloc[i].to_json()), "subject_id": f"person-{i}"} for i in idx]})
        assert r.status_code == 201, r.text
        out = r.json()["decisions"]
        return [o["index"] for o in out], [o["receipt_token"] for o in out]

    pub, pub_tokens = decide(DEP_PUB, range(800, 806))
    priv, priv_tokens = decide(DEP_PRIV, range(810, 813))
    tokens["subject"] = priv_tokens[0]
    return World(d, client, tokens, key_ids, m1.fingerprint, m2.fingerprint, pub, pub_tokens, priv, priv_tokens, X)


@pytest.fixture
def fresh(base, tmp_path) -> World:
    d = tmp_path / "log"
    shutil.copytree(base.dir, d)
    return replace(base, dir=d, client=TestClient(create_app(d)))


@pytest.fixture
def lg(fresh):
    ledger = Ledger.open(fresh.dir)
    yield ledger
    ledger.close()


def dump(data_dir: Path) -> list[str]:
    conn = sqlite3.connect(data_dir / "log.db")
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def entries(ledger: Ledger, kind: str) -> list[tuple[int, dict]]:
    return list(ledger.entries_of_type(kind))


# ------------------------------------------------------------------ flags and ratings as entries
def test_a_flag_is_an_entry_with_its_text_beside_the_log(fresh, lg):
    flags = Flags(lg)
    added = flags.add(category="wrong-reasons", by_role="subject", reporter=subject_identity(fresh.pub[0]),
                      decision=fresh.pub[0], text="  Refused because of my postcode, not my income.\n")
    idx = added.flag.index
    assert added.duplicate_of is None and added.tree_size == idx + 1 == lg.size
    entry = json.loads(lg.entry(idx))
    assert set(entry) == {"type", "v", "time", "category", "by_role", "model", "decision", "reporter", "text"}
    assert (entry["type"], entry["category"], entry["by_role"], entry["model"], entry["decision"]) == (
        "flag", "wrong-reasons", "subject", fresh.model, fresh.pub[0])
    assert entry["reporter"] == flags.pseudonym("reporter", subject_identity(fresh.pub[0])) != subject_identity(fresh.pub[0])
    # The text is beside the log, opening the entry's commitment; the entry holds no text.
    kind, salt, value = lg.private_value(entry["text"])
    assert kind == "flag-text" and json.loads(value) == "Refused because of my postcode, not my income."
    assert check_commitment(entry["text"], salt, value) and b"postcode" not in lg.entry(idx)
    assert flags.text(idx) == ("shown", "Refused because of my postcode, not my income.")
    # The flag's receipt carries its text and verifies offline; a changed text does not.
    from glasslog.ledger.receipt import Receipt
    from glasslog.verify import verify_receipt

    rc = capture.receipt(lg, idx)
    assert set(rc.private) == {"flag-text"}
    report = verify_receipt(rc, lg.verifier_key)
    assert report.ok, report
    doctored = dict(rc.to_dict())
    salt, _ = rc.private["flag-text"]
    tampered = Receipt.from_dict({**doctored, "private": {"flag-text": {**doctored["private"]["flag-text"],
                                                                          "value": base64.b64encode(b'"Something else."').decode()}}})
    assert not verify_receipt(tampered, lg.verifier_key).ok
    # A model flag without text: the model's prefix is resolved, no text field.
    m = flags.add(category="unfair", by_role="researcher", reporter=key_identity("abc"), model=fresh.other_model[:20])
    e = json.loads(lg.entry(m.flag.index))
    assert e["model"] == fresh.other_model and "text" not in e and "decision" not in e
    assert flags.text(m.flag.index) == ("none", None)


def test_one_flag_per_subject_per_decision_and_duplicates_merged(fresh, lg):
    flags = Flags(lg)
    subject = subject_identity(fresh.pub[1])
    first = flags.add(category="wrong-outcome", by_role="subject", reporter=subject, decision=fresh.pub[1])
    before = dump(fresh.dir)
    for category in ("wrong-outcome", "unfair"):  # any category: one flag per person per decision
        with pytest.raises(DuplicateFlagError, match=f"flag {first.flag.index}") as exc:
            flags.add(category=category, by_role="subject", reporter=subject, decision=fresh.pub[1], text="again")
        assert exc.value.existing == first.flag.index and exc.value.field == "decision"
    assert dump(fresh.dir) == before
    # Another Flags instance (another process) sees the same limit: it is read from the log.
    with pytest.raises(DuplicateFlagError):
        Flags(lg).add(category="other", by_role="subject", reporter=subject, decision=fresh.pub[1])
    # The same person may still flag another decision, or the model as a whole.
    flags.add(category="wrong-outcome", by_role="subject", reporter=subject, decision=fresh.pub[2])
    flags.add(category="wrong-outcome", by_role="subject", reporter=subject, model=fresh.model)

    # Others flagging the same decision for the same reason are merged into the first flag.
    dup = flags.add(category="wrong-outcome", by_role="public", reporter=address_identity("198.51.100.7"), decision=fresh.pub[1])
    dup2 = flags.add(category="wrong-outcome", by_role="researcher", reporter=key_identity("k1"), decision=fresh.pub[1])
    other = flags.add(category="unfair", by_role="public", reporter=address_identity("198.51.100.7"), model=fresh.other_model)
    assert (dup.duplicate_of, dup2.duplicate_of, other.duplicate_of) == (first.flag.index, first.flag.index, None)
    assert flags.duplicates_of(first.flag.index) == (dup.flag.index, dup2.flag.index)
    summaries, _ = flags.board()
    assert [s.flag.index for s in summaries if s.flag.decision == fresh.pub[1]] == [first.flag.index]
    assert flags.summary(dup.flag.index).reporters == 3
    # A rating of a duplicate counts for the primary; reporters of any flag of the group cannot rate it.
    r = flags.rate(dup2.flag.index, "helpful", key_identity("k2"))
    assert r.rating.flag == first.flag.index and json.loads(lg.entry(r.rating.index))["flag"] == first.flag.index
    for reporter in (subject, address_identity("198.51.100.7"), key_identity("k1")):
        with pytest.raises(OwnFlagError):
            flags.rate(first.flag.index, "helpful", reporter)
    # A later rating by the same rater replaces the earlier one.
    r2 = flags.rate(first.flag.index, "not-helpful", key_identity("k2"))
    assert r2.replaces == r.rating.index
    assert [(x.index, x.rating) for x in flags.ratings_of(first.flag.index)] == [(r2.rating.index, "not-helpful")]
    s = flags.summary(first.flag.index).score
    assert (s.helpful, s.not_helpful, s.ratings) == (0, 1, 1)
    # The same rating again appends nothing: the existing rating is returned.
    size = lg.size
    r3 = flags.rate(dup.flag.index, "not-helpful", key_identity("k2"))
    assert (r3.unchanged, r3.rating, r3.replaces, r3.tree_size) == (True, r2.rating, None, lg.signed_size())
    assert lg.size == size and not r2.unchanged
    rating_entry = json.loads(lg.entry(r2.rating.index))
    assert set(rating_entry) == {"type", "v", "time", "flag", "rating", "rater"}
    assert rating_entry["rater"] == flags.pseudonym("rater", key_identity("k2"))


@pytest.mark.parametrize("kwargs, field, message", [
    ({"category": "rude"}, "category", "must be one of"),
    ({"by_role": "king"}, "by_role", "must be one of"),
    ({"model": None, "decision": None}, "model", "give the model"),
    ({"model": "sha256:" + "0" * 64}, "model", "unknown model"),
    ({"decision": 0, "model": None}, "decision", "not a decision"),
    ({"decision": 10**6, "model": None}, "decision", "no entry"),
    ({"text": "x" * 1001}, "text", "1001 characters; the limit is 1000"),
    ({"text": "bell \x07"}, "text", r"U\+0007"),
])
def test_bad_flags_are_refused_naming_the_field(fresh, lg, kwargs, field, message):
    args = {"category": "other", "by_role": "public", "reporter": host_identity("t"), "model": fresh.model, **kwargs}
    flags = Flags(lg)
    before = dump(fresh.dir)
    with pytest.raises(FlagError, match=message) as exc:
        flags.add(**args)
    assert exc.value.field == field
    assert dump(fresh.dir) == before


def test_flag_model_must_be_the_decisions(fresh, lg):
    with pytest.raises(FlagError, match="was made by model") as exc:
        Flags(lg).add(category="other", by_role="public", reporter="x", decision=fresh.pub[0], model=fresh.other_model)
    assert exc.value.field == "model"
    with pytest.raises(UnknownFlagError):
        Flags(lg).rate(fresh.pub[0], "helpful", "x")  # a decision, not a flag
    with pytest.raises(FlagError, match="must be one of") as exc:
        Flags(lg).rate(Flags(lg).add(category="other", by_role="public", reporter="y", model=fresh.model).flag.index, "meh", "x")
    assert exc.value.field == "rating"


def test_erasing_flag_text_keeps_the_log_verifying(fresh, lg):
    flags = Flags(lg)
    added = flags.add(category="privacy", by_role="subject", reporter=subject_identity(fresh.priv[0]), decision=fresh.priv[0],
                      text="My name, Jane Example, is printed on the public page.")
    idx = added.flag.index
    entry_before, size_before, root_before = lg.entry(idx), lg.size, lg.root()
    assert flags.erase_text(idx, "personal data (moderation)") is True
    assert flags.erase_text(idx, "again") is False
    assert flags.text(idx) == ("erased", None)
    erased_at, reason = flags.erasure(idx)
    assert reason == "personal data (moderation)" and erased_at.endswith("Z")
    assert lg.entry(idx) == entry_before and lg.root(size_before) == root_before  # the erasure is an entry after it
    assert json.loads(lg.entry(size_before))["type"] == "erasure" and lg.size == size_before + 1
    report = audit_log(lg)
    assert report.ok, report.to_dict()
    proof = lg.inclusion_proof(idx)
    merkle.verify_inclusion(idx, lg.size, merkle.leaf_hash(entry_before), proof, lg.root())  # raises if it does not verify
    assert b"Jane Example" not in (fresh.dir / "log.db").read_bytes()
    with pytest.raises(FlagError) as exc:
        flags.erase_text(idx, " ")
    assert exc.value.field == "reason"


def test_flags_rank_through_the_log(fresh, lg):
    """A small two-camp population rating flags on the log itself, through Flags.rate."""
    flags = Flags(lg)
    camp = {f"A{k}": "A" for k in range(8)} | {f"B{k}": "B" for k in range(6)}
    kinds = ["both", "A", "B", "both", "A", "spam", "B", "spam", "A", "spam", "both"]
    # Eleven distinct targets (no merging): six decisions, and two models flagged in distinct categories.
    targets = [{"decision": i, "category": "wrong-outcome"} for i in fresh.pub] + [
        {"model": m, "category": c} for m, c in ((fresh.model, "harmful"), (fresh.model, "privacy"), (fresh.model, "other"),
                                                 (fresh.other_model, "harmful"), (fresh.other_model, "privacy"))]
    idx = [flags.add(by_role="public", reporter=host_identity(f"reporter-{k}"), **t).flag.index for k, t in enumerate(targets)]
    assert len(set(idx)) == 11 and all(flags.primary_of(i) == i for i in idx)
    for k, kind in enumerate(kinds):
        for rater, side in camp.items():
            good = kind == "both" or kind == side
            flags.rate(idx[k], "helpful" if good else "not-helpful", host_identity(rater))
    summaries, board = flags.board()
    assert board.method == "bridging" and board.raters_in_model == 14 and board.flags_in_model == 11
    order = [kinds[idx.index(s.flag.index)] for s in summaries]
    assert order[:3] == ["both", "both", "both"] and order[-3:] == ["spam", "spam", "spam"]
    assert [s.score.status for s in summaries[:3]] == ["confirmed"] * 3
    assert all(s.score.status != "confirmed" for s in summaries[3:])


# ------------------------------------------------------------------ triage
def add_finding(lg: Ledger, model: str | None, severity: str, verdict: str = "alert", check: str = "disparity") -> int:
    entry = {"type": "finding", "v": 1, "time": "2026-01-31T12:00:00Z", "source": "monitor", "check": check,
             "statistic": "difference", "value": 0.2, "threshold": 0.1, "verdict": verdict, "severity": severity,
             "by_role": "monitor"}
    if model is not None:
        entry["model"] = model
    else:
        entry["deployment"] = DEP_PUB
    return lg.append([entry]).first_index


def test_triage_queue_is_ranked_by_severity_and_support(fresh, lg):
    flags = Flags(lg)
    low = flags.add(category="other", by_role="public", reporter="a", model=fresh.model).flag.index
    medium = flags.add(category="wrong-outcome", by_role="public", reporter="b", decision=fresh.pub[0]).flag.index
    high = flags.add(category="harmful", by_role="public", reporter="c", model=fresh.model).flag.index
    high_two = flags.add(category="unfair", by_role="public", reporter="d", decision=fresh.pub[1]).flag.index
    flags.add(category="unfair", by_role="public", reporter="e", decision=fresh.pub[1])  # merged: two reporters
    critical = add_finding(lg, fresh.model, "critical")
    add_finding(lg, fresh.model, "high", verdict="ok")  # no action needed: not queued
    triage = Triage(lg, flags)
    queue = triage.queue()
    assert [it.item for it in queue] == [critical, high_two, high, medium, low]
    assert [it.severity for it in queue] == ["critical", "high", "high", "medium", "low"]
    assert queue[1].support["reporters"] == 2 and queue[0].support["tier"] == "alert" and queue[0].kind == "finding"
    assert {it.state for it in queue} == {"open"}


def test_triage_actions_are_entries_and_escalation_suspends_the_model(fresh, lg):
    flags = Flags(lg)
    fl = flags.add(category="unfair", by_role="researcher", reporter=key_identity("r"), decision=fresh.pub[0], text="Disparity.")
    item = fl.flag.index
    triage = Triage(lg, flags)
    r = triage.act(item, "assign", "", "sup-key", assignee="model risk unit")
    e = json.loads(lg.entry(r.triage_index))
    assert {k: e[k] for k in ("type", "item", "action", "reason", "key_id", "assignee")} == {
        "type": "triage", "item": item, "action": "assign", "reason": "", "key_id": "sup-key", "assignee": "model risk unit"}
    assert (r.item.state, r.item.assignee, r.model_status_index) == ("assigned", "model risk unit", None)
    r = triage.act(item, "resolve", "explained by income", "sup-key")
    assert r.item.state == "resolved" and r.item.assignee is None
    before = dump(fresh.dir)
    for action, args in (("resolve", ("again",)), ("escalate", ("now",)), ("assign", ("", "x"))):
        with pytest.raises(TriageConflict, match="is resolved"):
            triage.act(item, action, *args[:1], "sup-key", *args[1:])
    with pytest.raises(TriageError) as exc:
        triage.act(item, "reopen", " ", "sup-key")
    assert exc.value.field == "reason"
    with pytest.raises(TriageError) as exc:
        triage.act(item, "sweep", "x", "sup-key")
    assert exc.value.field == "action"
    assert dump(fresh.dir) == before
    triage.act(item, "reopen", "new evidence", "sup-key")
    wrapped = capture.wrap(lg, fresh.model, DEP_PUB)  # wrapped while the model is active
    r = triage.act(item, "escalate", "disparity confirmed by audit", "sup-key")
    assert r.model_status_index == r.triage_index + 1 == lg.size - 1
    status = json.loads(lg.entry(r.model_status_index))
    assert (status["type"], status["event"], status["model"], status["status"]) == ("model", "status", fresh.model, "suspended")
    assert status["reason"] == (f"escalated from triage item {item} (flag unfair): disparity confirmed by audit (by sup-key)")
    assert Registry(lg).get(fresh.model).status == "suspended"
    assert [h["action"] for h in triage.item(item).history] == ["assign", "resolve", "reopen", "escalate"]
    # Decisions of the suspended model are refused, and nothing is written.
    before = dump(fresh.dir)
    with pytest.raises(capture.ModelNotActiveError, match="suspended"):
        wrapped.predict(fresh.X.iloc[900:902])
    assert dump(fresh.dir) == before
    # Another item about the same model cannot suspend it twice: conflict, nothing written.
    other = flags.add(category="harmful", by_role="public", reporter="z", model=fresh.model).flag.index
    with pytest.raises(TriageConflict, match="already suspended"):
        triage.act(other, "escalate", "also bad", "sup-key")
    assert triage.item(other).state == "open"
    assert audit_log(lg).ok


def test_triage_items_and_findings(fresh, lg):
    triage = Triage(lg)
    deployment_only = add_finding(lg, None, "medium")
    with pytest.raises(TriageError, match="names no model") as exc:
        triage.act(deployment_only, "escalate", "x", "k")
    assert exc.value.field == "item"
    ok = add_finding(lg, fresh.model, "low", verdict="ok")
    with pytest.raises(UnknownItem, match="not an alert"):
        triage.item(ok)
    with pytest.raises(UnknownItem, match="not a flag or finding"):
        triage.item(fresh.pub[0])
    with pytest.raises(TriageError) as exc:
        triage.act(deployment_only, "assign", "", "k")
    assert exc.value.field == "assignee"
    assert triage.act(deployment_only, "resolve", "seasonal", "k").item.state == "resolved"


# ------------------------------------------------------------------ HTTP
def problem(r, status: int, field: str | None = None) -> dict:
    """Assert an RFC 9457 problem response with this status (and, if given, naming this field first)."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"], body
    if field is not None:
        assert body["errors"][0]["field"] == field and body["detail"].startswith(f"{field}: ") or \
            (status == 409 and body["errors"][0]["field"] == field), body
    return body


@pytest.fixture(scope="module")
def served(base, tmp_path_factory) -> World:
    """The base log plus a flag with text about a public-service decision, filed at the host (by nobody in ROLES)."""
    d = tmp_path_factory.mktemp("served") / "log"
    shutil.copytree(base.dir, d)
    with Ledger.open(d) as ledger:
        Flags(ledger).add(category="unfair", by_role="operator", reporter=host_identity("ops desk"), decision=base.pub[3],
                          text="Applicants from one district are refused more often.")
    return replace(base, dir=d, client=TestClient(create_app(d)))


@pytest.fixture
def served_fresh(served, tmp_path) -> World:
    d = tmp_path / "log"
    shutil.copytree(served.dir, d)
    return replace(served, dir=d, client=TestClient(create_app(d)))


def _flag_index(w: World) -> int:
    with Ledger.open(w.dir) as ledger:
        return Flags(ledger).list()[0].index


def _everyone(status: int) -> dict[str, int]:
    return {**{r: status for r in ROLES}, "revoked": 401, "malformed": 401}


def _supervisor_only(status: int) -> dict[str, int]:
    return {**{r: 403 for r in ROLES}, "public": 401, "revoked": 401, "malformed": 401, "supervisor": status}


MATRIX = {
    ("POST", "/v1/flags"): (lambda w: {"url": "/v1/flags", "json": {"model": w.other_model, "category": "harmful"}}, _everyone(201)),
    ("GET", "/v1/flags"): (lambda w: {"url": "/v1/flags"}, _everyone(200)),
    ("GET", "/v1/flags/{index}"): (lambda w: {"url": f"/v1/flags/{_flag_index(w)}"}, _everyone(200)),
    ("POST", "/v1/flags/{index}/ratings"): (lambda w: {"url": f"/v1/flags/{_flag_index(w)}/ratings", "json": {"rating": "helpful"}},
                                            _everyone(201)),
    ("DELETE", "/v1/flags/{index}/text"): (lambda w: {"url": f"/v1/flags/{_flag_index(w)}/text", "params": {"reason": "moderation"}},
                                           _supervisor_only(200)),
    ("GET", "/v1/triage"): (lambda w: {"url": "/v1/triage"}, _supervisor_only(200)),
    ("GET", "/v1/triage/{item}"): (lambda w: {"url": f"/v1/triage/{_flag_index(w)}"}, _supervisor_only(200)),
    ("POST", "/v1/triage/{item}/actions"): (
        lambda w: {"url": f"/v1/triage/{_flag_index(w)}/actions", "json": {"action": "assign", "assignee": "unit 2"}},
        _supervisor_only(201)),
}


def test_matrix_covers_every_oversight_route(served):
    routes = {(m, r.path) for r in served.client.app.routes
              if getattr(getattr(r, "endpoint", None), "__module__", None) in ("glasslog.server.routes.flags",
                                                                          "glasslog.server.routes.triage")
              for m in r.methods if m != "HEAD"}
    assert routes == set(MATRIX)


@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_authorisation_matrix(served_fresh, route):
    w = served_fresh
    build, expected = MATRIX[route]
    request = build(w)
    order = sorted(ROLES, key=lambda r: expected[r] < 300)  # allowed roles last
    results = {}
    for role in order:
        before = dump(w.dir)
        r = w.client.request(route[0], headers=w.h(role), **request)
        results[role] = r.status_code
        if r.status_code >= 400:
            problem(r, r.status_code)
            assert dump(w.dir) == before, f"{role}: a refused request wrote something"
    assert results == expected


def test_who_flags_what_and_who_reads_the_text(served_fresh):
    w = served_fresh
    c = w.client
    subj = {"Authorization": f"Bearer {w.priv_tokens[0]}"}
    text = "I was refused although I repaid every loan; the reasons cite my age."
    r = c.post("/v1/flags", headers=subj, json={"decision": w.priv[0], "category": "wrong-reasons", "text": text})
    assert r.status_code == 201, r.text
    own = r.json()
    assert {k: own[k] for k in ("decision", "deployment", "model", "category", "by_role", "text", "text_state", "own",
                                "status", "reporters", "duplicate_of", "triage_state")} == {
        "decision": w.priv[0], "deployment": DEP_PRIV, "model": w.model, "category": "wrong-reasons", "by_role": "subject",
        "text": text, "text_state": "shown", "own": True, "status": "needs-more-ratings", "reporters": 1,
        "duplicate_of": None, "triage_state": "open"}
    i = own["index"]
    # The text of a flag about a private decision: the reporter, supervisors and the operator only.
    for role, shown in (("public", False), ("researcher", False), ("developer", False), ("supervisor", True), ("operator", True)):
        v = c.get(f"/v1/flags/{i}", headers=w.h(role)).json()
        assert (v["text_state"], v["text"]) == (("shown", text) if shown else ("withheld", None)), role
        assert v["own"] is False and v["category"] == "wrong-reasons"  # the rest is public, as on the log
    assert text not in c.get("/v1/flags").text
    # Only they may rate it.
    problem(c.post(f"/v1/flags/{i}/ratings", headers=w.h("researcher"), json={"rating": "helpful"}), 403)
    assert c.post(f"/v1/flags/{i}/ratings", headers=w.h("supervisor"), json={"rating": "helpful"}).status_code == 201
    problem(c.post(f"/v1/flags/{i}/ratings", headers=subj, json={"rating": "helpful"}), 403)  # their own flag

    # Who may flag a private decision: its subject, roles that may read it; not the public, not another subject.
    problem(c.post("/v1/flags", json={"decision": w.priv[1], "category": "unfair"}), 401)
    other_subject = {"Authorization": f"Bearer {w.priv_tokens[1]}"}
    body = problem(c.post("/v1/flags", headers=other_subject, json={"decision": w.priv[2], "category": "unfair"}), 403)
    wrong_token = f"this receipt token opens decision {w.priv[1]}, not decision {w.priv[2]}"
    assert body["detail"].startswith(wrong_token) and body["errors"][0]["field"] == "token"
    assert c.post("/v1/flags", headers=w.h("developer"), json={"decision": w.priv[1], "category": "unfair"}).status_code == 201
    # A public-service decision: anyone; a subject flagging someone else's does so as the public.
    r = c.post("/v1/flags", json={"decision": w.pub[0], "category": "harmful", "text": "Public text."})
    assert r.status_code == 201 and r.json()["by_role"] == "public" and r.json()["text"] == "Public text."
    r = c.post("/v1/flags", headers=other_subject, json={"decision": w.pub[1], "category": "harmful"})
    assert r.status_code == 201 and r.json()["by_role"] == "public"
    assert c.get(f"/v1/flags/{r.json()['index']}").json()["text_state"] == "none"


def test_one_flag_per_person_duplicates_merged_and_rate_limits(base, tmp_path, monkeypatch):
    from glasslog.server import deps

    d = tmp_path / "log"
    shutil.copytree(base.dir, d)
    monkeypatch.setattr(deps, "FLAGS_PER_HOUR", 4)
    monkeypatch.setattr(deps, "RATINGS_PER_HOUR", 2)
    c = TestClient(create_app(d))
    subj = {"Authorization": f"Bearer {base.pub_tokens[2]}"}
    first = c.post("/v1/flags", headers=subj, json={"decision": base.pub[2], "category": "wrong-outcome"}).json()
    before = dump(d)
    body = problem(c.post("/v1/flags", headers=subj, json={"decision": base.pub[2], "category": "unfair"}), 409, "decision")
    assert f"flag {first['index']}" in body["detail"] and body["type"].endswith("/duplicate-flag")
    assert dump(d) == before
    # Others' flags of the same decision and category are merged into the first.
    dup = c.post("/v1/flags", headers={"Authorization": f"Bearer {base.tokens['researcher']}"},
                 json={"decision": base.pub[2], "category": "wrong-outcome"}).json()
    assert dup["duplicate_of"] == first["index"] and dup["reporters"] == 2
    listed = c.get("/v1/flags", params={"decision": str(base.pub[2])}).json()
    assert [f["index"] for f in listed["flags"]] == [first["index"]] and listed["flags"][0]["duplicates"] == [dup["index"]]
    # Per key or address: the public (one address here) gets FLAGS_PER_HOUR flags, then 429, nothing written;
    # refused flags (duplicates, bad input) do not count.
    assert c.post("/v1/flags", json={"decision": base.pub[0], "category": "other"}).status_code == 201
    for _ in range(5):
        problem(c.post("/v1/flags", json={"decision": base.pub[0], "category": "unfair"}), 409, "decision")
        problem(c.post("/v1/flags", json={"decision": base.pub[1], "category": "other", "text": "a\x1b"}), 422, "text")
    for k in range(1, 4):
        assert c.post("/v1/flags", json={"decision": base.pub[k], "category": "other"}).status_code == 201
    before = dump(d)
    r = c.post("/v1/flags", json={"decision": base.pub[4], "category": "other"})
    body = problem(r, 429)
    assert "at most 4 flags per hour" in body["detail"] and body["detail"].endswith("try again in 60 minutes")
    assert 3590 <= int(r.headers["retry-after"]) <= 3600  # seconds until the first of the four leaves the hour's window
    assert dump(d) == before
    # ... while a key has its own budget.
    sup = {"Authorization": f"Bearer {base.tokens['supervisor']}"}
    assert c.post("/v1/flags", headers=sup, json={"decision": base.pub[4], "category": "other"}).status_code == 201
    rated = c.post(f"/v1/flags/{first['index']}/ratings", headers=sup, json={"rating": "helpful"})
    assert rated.status_code == 201 and rated.json()["unchanged"] is False
    # The same rating again: nothing appended (200, the existing entry), and it counts toward the limit.
    before = dump(d)
    again = c.post(f"/v1/flags/{first['index']}/ratings", headers=sup, json={"rating": "helpful"})
    assert again.status_code == 200 and dump(d) == before
    assert (again.json()["index"], again.json()["unchanged"], again.json()["replaces"]) == (rated.json()["index"], True, None)
    r = c.post(f"/v1/flags/{first['index']}/ratings", headers=sup, json={"rating": "not-helpful"})
    assert problem(r, 429)["detail"].startswith("at most 2 ratings per hour") and int(r.headers["retry-after"]) > 3500
    v = c.get(f"/v1/flags/{first['index']}").json()
    assert v["ratings"] == {"helpful": 1, "somewhat": 0, "not_helpful": 0, "total": 1}


@pytest.mark.parametrize("body, field", [
    ({"model": "sha256:" + "0" * 64, "category": "other"}, "model"),
    ({"category": "other"}, "model"),
    ({"decision": 0, "category": "other"}, "decision"),
    ({"decision": 10**9, "category": "other"}, "decision"),
    ({"model": "sha256:" + "0" * 64, "category": "rude"}, "category"),
    ({"model": "sha256:abc", "category": "other"}, "model"),
    ({"decision": -1, "category": "other"}, "decision"),
    ({"decision": 1, "category": "other", "colour": "red"}, "colour"),
])
def test_bad_flag_requests_name_the_field(served, body, field):
    before = dump(served.dir)
    problem(served.client.post("/v1/flags", headers=served.h("researcher"), json=body), 422, field)
    assert dump(served.dir) == before


def test_bad_text_rating_and_lookups(served):
    c, h = served.client, served.h("researcher")
    fp = served.model
    problem(c.post("/v1/flags", headers=h, json={"model": fp, "category": "other", "text": "x" * 1001}), 422, "text")
    problem(c.post("/v1/flags", headers=h, json={"model": fp, "category": "other", "text": "a\x1b[31m"}), 422, "text")
    i = _flag_index(served)
    problem(c.post(f"/v1/flags/{i}/ratings", headers=h, json={"rating": "meh"}), 422, "rating")
    problem(c.get("/v1/flags/0"), 404)
    problem(c.get(f"/v1/flags/{served.pub[0]}"), 404)
    problem(c.post(f"/v1/flags/{served.pub[0]}/ratings", json={"rating": "helpful"}), 404)
    problem(c.get("/v1/flags", params={"status": "great"}), 422, "status")
    problem(c.get("/v1/flags", params={"decision": "01"}), 422, "decision")
    problem(c.get("/v1/triage/0", headers=served.h("supervisor")), 404)
    problem(c.get("/v1/triage", headers=served.h("supervisor"), params={"state": "done"}), 422, "state")


def test_ranked_list_and_scoring_summary(served_fresh):
    w = served_fresh
    c = w.client
    i = _flag_index(w)
    for role, rating in (("public", "helpful"), ("researcher", "helpful"), ("developer", "somewhat"), ("operator", "not-helpful")):
        r = c.post(f"/v1/flags/{i}/ratings", headers=w.h(role), json={"rating": rating})
        assert r.status_code == 201, r.text
        assert r.json()["flag"] == i and r.json()["replaces"] is None
    page = c.get("/v1/flags").json()
    assert page["total"] == 1 and page["next_offset"] is None
    assert page["scoring"]["method"] == "wilson" and page["scoring"]["parameters"]["crh_threshold"] == 0.4
    f = page["flags"][0]
    assert f["ratings"] == {"helpful": 2, "somewhat": 1, "not_helpful": 1, "total": 4}
    assert f["score"]["method"] == "wilson" and f["score"]["intercept"] is None
    assert f["score"]["wilson_lower_bound"] == pytest.approx(wilson_lower_bound(2.5, 4))
    assert (f["status"], f["rank"], f["text_state"]) == ("needs-more-ratings", 1, "shown")
    assert c.get("/v1/flags", params={"status": "confirmed"}).json()["total"] == 0


def test_triage_over_http_escalation_suspends_the_model(served_fresh):
    w = served_fresh
    c, sup = w.client, w.h("supervisor")
    i = _flag_index(w)
    q = c.get("/v1/triage", headers=sup).json()
    assert [(it["item"], it["kind"], it["severity"], it["state"], it["support"]["tier"]) for it in q["items"]] == [
        (i, "flag", "high", "open", "needs-more-ratings")]
    r = c.post(f"/v1/triage/{i}/actions", headers=sup, json={"action": "assign", "assignee": "model risk unit"})
    assert r.status_code == 201, r.text
    assert r.json()["item"]["state"] == "assigned" and r.json()["model_status_index"] is None
    problem(c.post(f"/v1/triage/{i}/actions", headers=sup, json={"action": "resolve"}), 422, "reason")
    problem(c.post(f"/v1/triage/{i}/actions", headers=sup, json={"action": "reopen", "reason": "x"}), 409, "action")
    r = c.post(f"/v1/triage/{i}/actions", headers=sup, json={"action": "escalate", "reason": "refusal rates differ by district"})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["item"]["state"] == "escalated" and out["model_status_index"] == out["triage_index"] + 1
    entry = c.get(f"/v1/entries/{out['triage_index']}").json()["entry"]
    assert {k: entry[k] for k in ("type", "item", "action", "key_id")} == {"type": "triage", "item": i, "action": "escalate",
                                                                           "key_id": w.key_ids["supervisor"]}
    model = c.get(f"/v1/models/{w.model}").json()
    assert model["status"] == "suspended" and model["history"][-1]["index"] == out["model_status_index"]
    assert f"triage item {i}" in model["history"][-1]["reason"]
    # Decisions of the suspended model are refused.
    batch = {"model": w.model, "deployment": DEP_PUB, "rows": [{"input": json.loads(w.X.iloc[900].to_json())}]}
    body = problem(c.post("/v1/decisions", headers=w.h("operator"), json=batch), 409)
    assert body["type"].endswith("/model-not-active")
    # The queue: nothing active now; the escalated item under state=escalated, with its history.
    assert c.get("/v1/triage", headers=sup).json()["total"] == 0
    items = c.get("/v1/triage", headers=sup, params={"state": "escalated"}).json()["items"]
    assert [h["action"] for h in items[0]["history"]] == ["assign", "escalate"]
    assert c.get(f"/v1/flags/{i}").json()["triage_state"] == "escalated"
    with Ledger.open(w.dir) as ledger:
        assert audit_log(ledger).ok


def test_supervisor_erases_flag_text(served_fresh):
    w = served_fresh
    c = w.client
    i = _flag_index(w)
    assert c.get(f"/v1/flags/{i}").json()["text"] == "Applicants from one district are refused more often."
    r = c.delete(f"/v1/flags/{i}/text", headers=w.h("supervisor"), params={"reason": "names a person"})
    assert r.status_code == 200, r.text
    v = c.get(f"/v1/flags/{i}").json()
    assert (v["text"], v["text_state"]) == (None, "erased") and v["text_erased_at"].endswith("Z")
    problem(c.delete(f"/v1/flags/{i}/text", headers=w.h("supervisor"), params={"reason": "again"}), 409)
    problem(c.delete(f"/v1/flags/{i}/text", headers=w.h("supervisor")), 422, "reason")
    with Ledger.open(w.dir) as ledger:
        assert audit_log(ledger).ok


# ------------------------------------------------------------------ CLI
def test_cli_flags_and_triage(fresh):
    from typer.testing import CliRunner

    from glasslog.cli import app as cli

    run = CliRunner()
    d = ["-d", str(fresh.dir)]

    def ok(*args):
        r = run.invoke(cli, [*args, *d])
        assert r.exit_code == 0, r.output
        return r.output

    added = json.loads(ok("flags", "add", "--model", fresh.model[:19], "--category", "unfair", "--as", "supervisor",
                          "--text", "Refusals twice as frequent under 25.", "--json"))
    i = added["index"]
    assert (added["by_role"], added["text"], added["status"], added["model"]) == ("supervisor", "Refusals twice as frequent under 25.",
                                                                                 "needs-more-ratings", fresh.model)
    r = run.invoke(cli, ["flags", "add", "--model", fresh.model, "--category", "harmful", "--as", "supervisor", *d])
    assert r.exit_code == 2 and f"flag {i}" in r.output  # one flag per reporter per target
    assert run.invoke(cli, ["flags", "add", "--decision", str(fresh.pub[0]), "--category", "rude", *d]).exit_code == 2
    assert run.invoke(cli, ["flags", "add", "--model", fresh.model, "--category", "other", "--as", "public", *d]).exit_code == 2
    ok("flags", "rate", str(i), "helpful", "--rater", "alice")
    rated = json.loads(ok("flags", "rate", str(i), "not-helpful", "--rater", "alice", "--json"))
    assert rated["flag"] == i and rated["replaces"] == i + 1
    assert run.invoke(cli, ["flags", "rate", str(i), "great", *d]).exit_code == 2
    shown = json.loads(ok("flags", "show", str(i), "--json"))
    assert (shown["not_helpful"], shown["ratings"], [g["rating"] for g in shown["ratings_given"]]) == (1, 1, ["not-helpful"])
    listed = json.loads(ok("flags", "list", "--json"))
    assert [f["index"] for f in listed["flags"]] == [i] and listed["scoring"]["method"] == "wilson"
    assert "unfair" in ok("flags", "list")

    queue = json.loads(ok("triage", "list", "--json"))
    assert [(q["item"], q["severity"], q["state"]) for q in queue] == [(i, "high", "open")]
    assert json.loads(ok("triage", "assign", str(i), "--to", "model risk unit", "--json"))["item"]["state"] == "assigned"
    out = json.loads(ok("triage", "escalate", str(i), "--reason", "disparity confirmed", "--by", "fsa-desk", "--json"))
    assert out["item"]["state"] == "escalated" and out["model_status_index"] == out["triage_index"] + 1
    r = run.invoke(cli, ["triage", "resolve", str(i), "--reason", "x", *d])
    assert r.exit_code == 2 and "escalated" in r.output
    assert json.loads(ok("models", "show", fresh.model, "--json"))["status"] == "suspended"
    assert json.loads(ok("triage", "list", "--json")) == []
    assert json.loads(ok("triage", "reopen", str(i), "--reason", "new data", "--json"))["item"]["state"] == "open"
    ok("flags", "erase-text", str(i), "--reason", "moderation")
    assert json.loads(ok("flags", "show", str(i), "--json"))["text_state"] == "erased"
    assert run.invoke(cli, ["flags", "erase-text", str(i), "--reason", "again", *d]).exit_code == 2


# ------------------------------------------------------------------ repeated alerts and merged items
def test_repeated_alerts_merge_into_the_open_item_until_it_is_resolved(fresh, lg):
    def alert(value: float, check: str = "disparity.selection_rate", attribute: str = "personal_status_and_sex",
              severity: str = "high") -> int:
        entry = {"type": "finding", "v": 1, "time": f"2026-02-0{int(value * 10)}T12:00:00Z", "source": "monitor",
                 "check": check, "model": fresh.model, "deployment": DEP_PUB, "statistic": "min selection_rate ratio",
                 "value": value, "threshold": 0.8, "verdict": "alert", "severity": severity, "by_role": "supervisor",
                 "evidence": {"attribute": attribute}}
        return lg.append([entry]).first_index

    first = alert(0.5)
    again = alert(0.6)
    third = alert(0.7, severity="critical")
    by_age = alert(0.4, attribute="age_in_years")  # another attribute: its own item
    triage = Triage(lg)
    queue = triage.queue()
    assert [it.item for it in queue] == [first, by_age]
    top = queue[0]
    assert top.duplicates == (again, third) and top.severity == "critical"
    assert top.support["alerts"] == 3 and top.support["latest"] == {"index": third, "time": "2026-02-07T12:00:00Z", "value": 0.7}
    assert queue[1].support["alerts"] == 1 and queue[1].duplicates == ()
    # a merged alert is shown through its item, but actions on it are refused: act on the item
    assert triage.item(again).item == first
    before = dump(fresh.dir)
    with pytest.raises(TriageConflict, match=f"{again} is merged into item {first}") as exc:
        triage.act(again, "resolve", "x", "k")
    assert exc.value.field == "item" and dump(fresh.dir) == before
    # assigned items still take repeats; after a resolve the next repeat starts a new item
    triage.act(first, "assign", "", "k", assignee="unit 2")
    fourth = alert(0.3)
    assert Triage(lg).item(first).duplicates == (again, third, fourth)
    triage.act(first, "resolve", "explained by income", "k")
    fifth = alert(0.2)
    t2 = Triage(lg)
    assert [it.item for it in t2.queue()] == [by_age, fifth]  # both high: the older first
    assert t2.item(first).state == "resolved" and t2.item(fifth).duplicates == ()


def test_merged_flag_and_alert_actions_conflict_over_http_and_cli(served_fresh):
    from typer.testing import CliRunner

    from glasslog.cli import app as cli

    w = served_fresh
    c, sup = w.client, w.h("supervisor")
    primary = _flag_index(w)
    with Ledger.open(w.dir) as ledger:
        dup = Flags(ledger).add(category="unfair", by_role="public", reporter="someone else", decision=w.pub[3]).flag.index
    assert c.get(f"/v1/triage/{dup}", headers=sup).json()["item"] == primary
    q = c.get("/v1/triage", headers=sup).json()["items"]
    assert q[0]["duplicates"] == [dup] and q[0]["support"]["reporters"] == 2
    before = dump(w.dir)
    body = problem(c.post(f"/v1/triage/{dup}/actions", headers=sup, json={"action": "assign", "assignee": "unit 2"}), 409, "item")
    assert body["detail"] == f"{dup} is merged into item {primary}; act on item {primary}"
    assert dump(w.dir) == before
    r = CliRunner().invoke(cli, ["triage", "resolve", str(dup), "--reason", "x", "-d", str(w.dir)])
    assert r.exit_code == 2 and f"{dup} is merged into item {primary}" in " ".join(r.output.split())
    assert dump(w.dir) == before
    r = CliRunner().invoke(cli, ["triage", "list", "--state", "closed", "-d", str(w.dir)])
    assert r.exit_code == 2 and "active, all, or one of open, assigned, resolved, escalated" in " ".join(r.output.split())
