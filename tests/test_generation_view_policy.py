"""glasslog.access.policy for generations: every role x visibility, from the policy itself (no model weights needed)."""

from __future__ import annotations

import json

import pytest

from glasslog.access import Principal, effective_principal, may_read_decision
from glasslog.access.policy import ROLES, generation_view
from glasslog.ledger import commit

DEP = "agency.example/letters"
PROMPT = {"text": "Write to the applicant of case 17"}
OUTPUT = {"text": "Dear applicant, ...", "tokens": [5, 6, 7]}
INDEX = 41


def principal(role: str, index: int = INDEX) -> Principal:
    if role == "subject":
        return Principal("subject", entry_index=index)
    return Principal(role, key_id="abc123abc123", name="holder", deployments=(DEP,) if role == "developer" else ())


def entry_and_private(public: bool) -> tuple[dict, dict]:
    pc, ps, pv = commit(PROMPT)
    sc, ss, sv = commit("case-17")
    entry = {"type": "generation", "v": 1, "model": "sha256:" + "ab" * 32, "deployment": DEP,
             "time": "2026-12-05T12:00:00Z", "prompt": pc, "subject": sc, "tokens": {"prompt": 9, "output": 3},
             "sampling": {"max_new_tokens": 3, "do_sample": False}, "activations": {"commitments": ["x", "y"]}}
    private = {"prompt": (pc, ps, pv), "subject": (sc, ss, sv)}
    if public:
        entry["output"], entry["output_tokens"] = OUTPUT["text"], OUTPUT["tokens"]
    else:
        oc, os_, ov = commit(OUTPUT)
        entry["output_commitment"] = oc
        private["output"] = (oc, os_, ov)
    return entry, private


@pytest.mark.parametrize("public", [True, False], ids=["public-service", "private"])
@pytest.mark.parametrize("role", ROLES)
def test_each_role_sees_what_the_policy_says(role, public):
    entry, private = entry_and_private(public)
    who = principal(role)
    readable = may_read_decision(who, INDEX, DEP, public)
    # the gate: everyone reads public-service generations; a private one its subject and the roles reading the deployment
    assert readable == (public or role in ("subject", "developer", "researcher", "supervisor", "operator"))
    if not readable:
        return
    view = generation_view(effective_principal(who, INDEX, DEP), INDEX, entry, private)
    assert view["activation_commitments"] == 2 and view["prompt"] == entry["prompt"]
    assert view["output"] == OUTPUT["text"] and view["output_tokens"] == OUTPUT["tokens"]  # readers see the output
    sees_all = role in ("subject", "supervisor", "operator")
    assert ("prompt_value" in view) == sees_all and ("subject_id" in view) == sees_all
    if sees_all:
        assert view["prompt_value"] == PROMPT and view["subject_id"] == "case-17"


def test_public_view_opens_nothing_and_another_subject_gets_it():
    entry, private = entry_and_private(False)
    view = generation_view(principal("public"), INDEX, entry, private)
    assert "output" not in view and "prompt_value" not in view and view["output_commitment"] == entry["output_commitment"]
    other = effective_principal(principal("subject", index=INDEX + 1), INDEX, DEP)
    assert other.role == "public"
    assert not may_read_decision(principal("subject", index=INDEX + 1), INDEX, DEP, False)
    entry, private = entry_and_private(True)
    view = generation_view(other, INDEX, entry, private)
    assert view["output"] == OUTPUT["text"] and "prompt_value" not in view and "subject_id" not in view
    assert json.loads(private["prompt"][2]) == PROMPT  # the value was there: the view withheld it
