"""The access policy, table-driven: every role x deployment visibility x disclosure level.

The expected tables are written out by hand from the policy's documented table
(src/glasslog/access/policy.py), so a change to the rule fails here first.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from glasslog.access import policy
from glasslog.access.keys import PUBLIC, Principal
from glasslog.ledger import commit

ROLES = policy.ROLES
DEP = "bank.example/credit/1"
OTHER = "bank.example/credit/2"


def principal(role: str, index: int = 7) -> Principal:
    if role == "public":
        return PUBLIC
    if role == "subject":
        return Principal("subject", entry_index=index)
    return Principal(role, key_id="abc123abc123", name="holder", deployments=(DEP,) if role == "developer" else ())


# weights: role -> disclosure levels under which it may download
WEIGHTS = {
    "public": {"public"},
    "subject": {"public"},
    "operator": {"public"},
    "developer": {"developers", "public"},
    "researcher": {"researchers", "developers", "public"},
    "supervisor": {"supervisors", "researchers", "developers", "public"},
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("level", policy.DISCLOSURE_ORDER)
def test_weights_download(role, level):
    assert policy.may_download_weights(role, level) is (level in WEIGHTS[role])


def test_unknown_disclosure_level_is_refused():
    with pytest.raises(ValueError, match="unknown disclosure policy"):
        policy.may_download_weights("supervisor", "friends")


# (role, deployment public?, the decision is the subject's own / the developer's granted deployment?) -> may read
READ = {
    ("public", True, False): True, ("public", False, False): False,
    ("subject", True, False): True, ("subject", False, False): False, ("subject", False, True): True,
    ("developer", True, False): True, ("developer", False, False): False, ("developer", False, True): True,
    ("researcher", False, False): True, ("supervisor", False, False): True, ("operator", False, False): True,
}


@pytest.mark.parametrize(("key", "expected"), READ.items(), ids=[f"{r}-{'public' if p else 'private'}-{'own' if o else 'other'}"
                                                                 for r, p, o in READ])
def test_may_read_decision(key, expected):
    role, public, own = key
    who = principal(role, index=7)
    index = 7 if (role == "subject" and own) else 8
    deployment = DEP if (role != "developer" or own) else OTHER
    assert policy.may_read_decision(who, index, deployment, public) is expected


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("public", [True, False])
def test_sees_outputs_and_listing(role, public):
    granted = (DEP,) if role == "developer" else ()
    expected = public or role in ("researcher", "supervisor", "operator") or role == "developer"
    assert policy.sees_outputs(role, DEP, public, granted) is expected
    assert policy.sees_outputs(role, OTHER, public, granted) is (public or role in ("researcher", "supervisor", "operator"))
    deployments = [SimpleNamespace(name=DEP, public=public), SimpleNamespace(name=OTHER, public=public)]
    listed = policy.readable_deployments(principal(role), deployments)
    if role == "subject":
        assert listed == []
    else:
        assert listed == [d.name for d in deployments if policy.sees_outputs(role, d.name, public, granted)]


@pytest.mark.parametrize("role", ROLES)
def test_outcomes_and_receipts(role):
    assert policy.opens_outcomes(role) is (role != "public")
    assert policy.receipt_opens_private_values(role) is (role in ("subject", "supervisor", "operator"))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("own", [True, False])
@pytest.mark.parametrize("about_decision", [True, False])
@pytest.mark.parametrize("public", [True, False])
def test_flag_text(role, own, about_decision, public):
    expected = role in ("supervisor", "operator") or own or not about_decision or public
    assert policy.may_read_flag_text(role, own, about_decision, public) is expected


CARD = SimpleNamespace(features=[SimpleNamespace(name="income", personal=False, protected=False),
                                 SimpleNamespace(name="postcode", personal=True, protected=False),
                                 SimpleNamespace(name="age", personal=False, protected=True)],
                       researcher_access_protected=False)
VALUES = {"income": 1200, "postcode": "1010", "age": 41, "unknown": 1}
INPUTS = {
    "public": None, "developer": None,
    "researcher": {"income": 1200},
    "subject": VALUES, "supervisor": VALUES, "operator": VALUES,
}


@pytest.mark.parametrize("role", ROLES)
def test_input_view(role):
    assert policy.input_view(role, VALUES, CARD) == INPUTS[role]
    allowed = SimpleNamespace(features=CARD.features, researcher_access_protected=True)
    if role == "researcher":
        assert policy.input_view(role, VALUES, allowed) == {"income": 1200, "age": 41}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("output_private", [True, False])
def test_decision_view(role, output_private):
    c_in, s_in, v_in = commit(VALUES)
    c_subj, s_subj, v_subj = commit("applicant-7")
    entry = {"type": "decision", "model": "sha256:" + "a" * 64, "deployment": DEP, "time": "2026-12-05T00:00:00Z",
             "input": c_in, "subject": c_subj}
    private = {"input": (c_in, s_in, v_in), "subject": (c_subj, s_subj, v_subj)}
    if output_private:
        c_out, s_out, v_out = commit(1)
        entry["output_commitment"] = c_out
        private["output"] = (c_out, s_out, v_out)
    else:
        entry["output"] = 1
    view = policy.decision_view(principal(role), 7, entry, private, CARD)
    assert ("output" in view) is (not output_private or role != "public")
    assert view.get("input_values") == INPUTS[role]
    assert ("subject_id" in view) is (role in ("subject", "supervisor", "operator"))
    if "subject_id" in view:
        assert view["subject_id"] == json.loads(v_subj)
