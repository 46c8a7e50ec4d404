"""Generations on the web register and the API: pages, views by role, receipts, flags, triage, the kill switch.

A real log with the small test causal LM (built from a config with a fixed seed; nothing is downloaded) registered by
its directory, generations in a public-service and a private deployment (one with a subject id), served by the real
app (``glasslog.server.create_app``) through HTTP. What the pages and the API show is asserted against the entries.
"""

from __future__ import annotations

import base64
import html
import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch", reason="the llm extra (torch, transformers, safetensors, model-signing) is not installed")
pytest.importorskip("transformers", reason="the llm extra is not installed")
pytest.importorskip("model_signing", reason="the llm extra is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from glasslog.access import KeyStore  # noqa: E402
from glasslog.capture import ModelNotActiveError, open_log  # noqa: E402
from glasslog.capture.generator import wrap_generator  # noqa: E402
from glasslog.demo.generative import register_model_dir  # noqa: E402
from glasslog.demo.testmodels import build_causal_lm  # noqa: E402
from glasslog.ledger.receipt import Receipt  # noqa: E402
from glasslog.server import create_app  # noqa: E402
from glasslog.verify.receipts import verify_receipt  # noqa: E402

torch.set_num_threads(1)

PUB, PRIV = "city.example/letters", "city.example/assistant"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("webgen")
    model_dir = build_causal_lm(root / "lm", seed=0)
    data = root / "data"
    log = open_log(data, create=True, origin="test.example/web-generations")
    fp = register_model_dir(log, model_dir, name="test-lm", version="1")
    pub = wrap_generator(log, fp, PUB, model_dir=model_dir, visibility="public-service")
    public = pub.generate(["Dear applicant,", "Notice:"], subject_ids=["case-1", None], max_new_tokens=20)
    priv = wrap_generator(log, fp, PRIV, model_dir=model_dir, visibility="private")
    private = priv.generate(["Summarise the file of"], subject_ids=["case-9"], max_new_tokens=20, do_sample=True,
                            temperature=0.9, seed=3)
    keys = KeyStore(log)
    tokens = {role: keys.create(role, f"tests {role}")[1] for role in ("operator", "supervisor", "researcher")}
    tokens["developer"] = keys.create("developer", "tests developer", [PUB])[1]
    client = TestClient(create_app(data))
    return {"log": log, "fp": fp, "model_dir": model_dir, "data": data, "public": public, "private": private,
            "pub_gen": pub, "client": client, "tokens": tokens, "key": log.verifier_key}


def _h(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


def test_generation_pages_show_text_where_public_and_commitment_otherwise(world):
    c, log = world["client"], world["log"]
    g = world["public"][0]
    e = json.loads(log.entry(g.index))
    r = c.get(f"/generations/{g.index}", headers={"Accept": "text/html"})
    assert r.status_code == 200 and r.headers["content-security-policy"]
    page = html.unescape(r.text)
    assert g.text.strip() and g.text in page  # the output text, as logged
    assert f"{e['tokens']['prompt']} in the prompt, {e['tokens']['output']} generated" in page
    assert "greedy; at most 20 new tokens" in page
    assert f'id="activations">{len(e["activations"]["commitments"])} (TOPLOC' in r.text
    assert f"/models/{world['fp']}" in r.text and "test-lm 1" in page
    assert f'href="/receipt?index={g.index}&amp;kind=generation"' in r.text
    assert "case-1" not in page and e["prompt"][:19] in page  # the subject id never; the prompt as a commitment
    # a private generation: the commitment, never the text
    p = world["private"][0]
    pe = json.loads(log.entry(p.index))
    r = c.get(f"/generations/{p.index}")
    page = html.unescape(r.text)
    assert r.status_code == 200 and pe["output_commitment"] in page and p.text not in page
    assert "sampled: temperature 0.9" in page and "seed 3" in page
    # lists: all three, the private one without its text; filters; a decision-less log's other entries are 404
    r = c.get("/generations")
    page = html.unescape(r.text)
    assert r.status_code == 200 and all(f'href="/generations/{x.index}"' in r.text for x in world["public"] + world["private"])
    assert p.text not in page and "private (commitment)" in page
    r = c.get("/generations", params={"deployment": PRIV})
    assert f'href="/generations/{p.index}"' in r.text and f'href="/generations/{g.index}"' not in r.text
    assert c.get("/generations", params={"deployment": "nope"}).status_code == 400
    assert c.get("/generations/0").status_code == 404  # entry 0 is the model's registration
    assert c.get("/generations/99999").status_code == 404
    # the model page lists them; the register links each deployment's generations
    r = c.get(f"/models/{world['fp']}")
    assert all(f'href="/generations/{x.index}"' in r.text for x in world["public"] + world["private"])
    assert f"/generations?deployment={PRIV}" in c.get("/").text


def test_api_views_by_role_and_receipts(world):
    c, t = world["client"], world["tokens"]
    g, p = world["public"][0], world["private"][0]
    r = c.get(f"/v1/generations/{g.index}")
    assert r.status_code == 200
    v = r.json()
    assert v["output"] == g.text and v["output_tokens"] == g.tokens and "prompt_value" not in v and "subject_id" not in v
    assert v["activation_commitments"] == len(g.commitments) and v["model"] == world["fp"]
    # private: the public is refused, the researcher reads the opened output but not the prompt, the supervisor all
    assert c.get(f"/v1/generations/{p.index}").status_code == 403
    assert c.get(f"/v1/generations/{p.index}", headers=_h(t["developer"])).status_code == 403  # granted PUB only
    rv = c.get(f"/v1/generations/{p.index}", headers=_h(t["researcher"])).json()
    assert rv["output"] == p.text and "prompt_value" not in rv and "subject_id" not in rv
    sv = c.get(f"/v1/generations/{p.index}", headers=_h(t["supervisor"])).json()
    assert sv["prompt_value"] == {"text": "Summarise the file of"} and sv["subject_id"] == "case-9"
    # the subject, with the receipt token generate() issued: their own generation, every value opened
    assert p.receipt_token and p.receipt_token.startswith(f"grt_{p.index}_") and world["public"][1].receipt_token is None
    own = c.get(f"/v1/generations/{p.index}", headers=_h(p.receipt_token)).json()
    assert own["subject_id"] == "case-9" and own["output"] == p.text
    assert c.get("/v1/generations", headers=_h(p.receipt_token)).json()["generations"][0]["index"] == p.index
    # lists by role
    listed = [x["index"] for x in c.get("/v1/generations").json()["generations"]]
    assert listed == [x.index for x in world["public"]]
    listed = [x["index"] for x in c.get("/v1/generations", headers=_h(t["researcher"])).json()["generations"]]
    assert listed == [x.index for x in world["public"] + world["private"]]
    assert c.get("/v1/generations", params={"deployment": PRIV}).status_code == 403
    # by model: the fingerprint or a unique prefix of it, as /v1/models/{prefix}
    by_full = [x["index"] for x in c.get("/v1/generations", params={"model": world["fp"]}).json()["generations"]]
    assert by_full == [x.index for x in world["public"]]
    for prefix in (world["fp"][:19], world["fp"][7:23]):
        r = c.get("/v1/generations", params={"model": prefix})
        assert r.status_code == 200 and [x["index"] for x in r.json()["generations"]] == by_full, r.text
    r = c.get("/v1/generations", params={"model": "sha256:" + "0" * 12})
    assert r.status_code == 404 and "unknown model" in r.json()["detail"]
    assert c.get("/v1/generations", params={"model": world["fp"][:12]}).status_code == 422  # 5 hex digits: too short
    assert c.get("/v1/generations", params={"model": "sha256:zzzzzzzzzzzz"}).status_code == 422
    # receipts verify offline; the subject's opens the prompt and subject id
    r = c.get(f"/v1/generations/{g.index}/receipt")
    assert r.status_code == 200
    rep = verify_receipt(Receipt.from_dict(r.json()), world["key"])
    assert rep.ok and json.loads(base64.b64decode(r.json()["entry"]))["output"] == g.text
    assert c.get(f"/v1/generations/{p.index}/receipt").status_code == 403
    r = c.get(f"/v1/generations/{p.index}/receipt", headers=_h(p.receipt_token))
    rep = verify_receipt(Receipt.from_dict(r.json()), world["key"])
    assert rep.ok and {"prompt commitment", "subject commitment", "output commitment"} <= {ch.name for ch in rep.checks}
    assert c.get(f"/v1/generations/{p.index}/receipt", headers=_h(p.receipt_token + "x")).status_code == 401
    assert c.get(f"/v1/generations/{world['fp'][:3]}").status_code == 422  # not an index


def test_flags_on_generations_http_web_and_triage(world):
    c, log, t = world["client"], world["log"], world["tokens"]
    g, p = world["public"][0], world["private"][0]
    size = log.size
    # anyone flags a public-service generation; the flag names it (the entry's decision field holds its index)
    r = c.post("/v1/flags", json={"generation": g.index, "category": "harmful", "text": "threatening tone"})
    assert r.status_code == 201, r.text
    f = r.json()
    assert f["generation"] == g.index and f["decision"] is None and f["model"] == world["fp"]
    assert f["deployment"] == PUB and f["text"] == "threatening tone"
    entry = json.loads(log.entry(f["index"]))
    assert entry["type"] == "flag" and entry["decision"] == g.index and log.size == size + 1
    # the public may not flag a private generation; its subject may, with the token
    r = c.post("/v1/flags", json={"generation": p.index, "category": "privacy"})
    assert r.status_code == 401 and log.size == size + 1
    r = c.post("/v1/flags", json={"generation": p.index, "category": "privacy", "text": "my case number is in it"},
               headers=_h(p.receipt_token))
    assert r.status_code == 201 and r.json()["by_role"] == "subject" and r.json()["generation"] == p.index
    assert c.get(f"/v1/flags/{r.json()['index']}").json()["text_state"] == "withheld"  # private: not for the public
    # bad targets, named
    for body, field in (({"generation": 0, "category": "other"}, "generation"),
                        ({"decision": g.index, "category": "other"}, "decision"),
                        ({"generation": g.index, "decision": g.index, "category": "other"}, "generation")):
        r = c.post("/v1/flags", json=body, headers=_h(t["researcher"]))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
    # listed by generation; the web pages link the generation
    listed = c.get("/v1/flags", params={"generation": str(g.index)}).json()["flags"]
    assert [x["index"] for x in listed] == [f["index"]]
    assert c.get("/v1/flags", params={"decision": str(g.index)}).json()["flags"] == []
    assert f'href="/generations/{g.index}">generation {g.index}</a>' in c.get("/flags").text
    page = c.get(f"/generations/{g.index}").text
    assert 'id="generation-flags"' in page and "harmful" in page and 'data-target="generation"' in page
    # triage sees both, naming the generations
    items = c.get("/v1/triage", headers=_h(t["supervisor"])).json()["items"]
    gens = {it["generation"] for it in items if it["kind"] == "flag"}
    assert {g.index, p.index} <= gens and all(it["decision"] is None for it in items if it["generation"] is not None)


def test_suspended_over_http_refuses_generation_and_logs_nothing(world, tmp_path):
    c, log, t = world["client"], world["log"], world["tokens"]
    r = c.post(f"/v1/models/{world['fp']}/status", json={"status": "suspended", "reason": "harmful letters"},
               headers=_h(t["supervisor"]))
    assert r.status_code == 200, r.text
    size = log.size
    with pytest.raises(ModelNotActiveError, match="suspended"):
        world["pub_gen"].generate(["Dear applicant,"], max_new_tokens=5)
    with pytest.raises(ModelNotActiveError, match="suspended"):
        wrap_generator(log, world["fp"], PUB, model_dir=world["model_dir"])
    assert log.size == size
    assert "suspended" in c.get(f"/models/{world['fp']}").text
    r = c.post(f"/v1/models/{world['fp']}/status", json={"status": "active", "reason": "reviewed"},
               headers=_h(t["supervisor"]))
    assert r.status_code == 200
    assert world["pub_gen"].generate(["Dear applicant,"], max_new_tokens=5)[0].index == size + 1


def test_outcomes_of_generations_over_http(world):
    c, log, t = world["client"], world["log"], world["tokens"]
    g, p = world["public"][1], world["private"][0]
    op = _h(t["operator"])
    size = log.size
    bad = [({"generation": 0, "outcome": "x"}, "outcomes[0].generation", "not a generation"),
           ({"decision": g.index, "outcome": "x"}, "outcomes[0].decision", "send it as generation"),
           ({"decision": g.index, "generation": g.index, "outcome": "x"}, "outcomes[0].generation", "exactly one"),
           ({"outcome": "x"}, "outcomes[0].decision", "exactly one"),
           ({"generation": 10**9, "outcome": "x"}, "outcomes[0].generation", "no entry")]
    for row, field, problem in bad:
        r = c.post("/v1/outcomes", headers=op, json={"outcomes": [row]})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field and problem in r.json()["detail"], r.text
    assert log.size == size
    r = c.post("/v1/outcomes", headers=op, json={"outcomes": [{"generation": g.index, "outcome": "upheld"},
                                                              {"generation": p.index, "outcome": "appealed"}]})
    assert r.status_code == 201, r.text
    assert log.size == size + 2
    pub_o, priv_o = json.loads(log.entry(size)), json.loads(log.entry(size + 1))
    assert pub_o["decision"] == g.index and pub_o["outcome"] == "upheld"
    assert "outcome" not in priv_o and priv_o["outcome_commitment"].startswith("sha256:")  # private: a commitment
    assert [o["outcome"] for o in c.get(f"/v1/generations/{g.index}").json()["outcomes"]] == ["upheld"]
    assert c.get(f"/v1/generations/{p.index}", headers=_h(t["researcher"])).json()["outcomes"][0]["outcome"] == "appealed"
    page = html.unescape(c.get(f"/generations/{g.index}").text)
    assert '"upheld" (entry' in page
    assert "private (commitment)" in c.get(f"/generations/{p.index}").text
    # a second outcome is a correction, as for decisions; a flag entry takes none
    r = c.post("/v1/outcomes", headers=op, json={"outcomes": [{"generation": g.index, "outcome": "overturned"}]})
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "outcomes[0].corrects" and log.size == size + 2
    r = c.post("/v1/outcomes", headers=op, json={"outcomes": [{"decision": 0, "outcome": "x"}]})
    assert r.status_code == 422 and "not a decision" in r.json()["detail"]


def test_in_a_real_browser_flag_form_and_receipt_of_a_generation(world):
    """Debian's Chromium (as tests/test_web.py): the page's flag form posts a generation flag; the receipt page
    verifies a generation's receipt with WebCrypto, check by check as the Python verifier does."""
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e '.[test]')")
    from playwright.sync_api import sync_playwright

    from .test_web import CHROMIUM, CHROMIUM_ARGS, Server, wait_js

    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (.ci/browser-deps.sh installs it)")
    log = world["log"]
    g = world["public"][0]
    server = Server(create_app(world["data"]))
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            page = b.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{server.url}/generations/{g.index}")
            assert " ".join(g.text.split()) and " ".join(g.text.split()) in " ".join(page.text_content("#output").split())
            size = log.size
            page.check("#cat-wrong-reasons")
            page.fill("#flag-text", "from the browser")
            wait_js(page, "!document.getElementById('flag-submit').disabled")  # the pages' CSP forbids in-page eval
            page.click("#flag-submit")
            page.wait_for_selector("#flag-result a")
            assert f"entry {size}" in page.text_content("#flag-result")
            flag = json.loads(log.entry(size))
            assert flag["type"] == "flag" and flag["decision"] == g.index and flag["category"] == "wrong-reasons"
            page.goto(f"{server.url}/receipt?index={g.index}&kind=generation")
            page.wait_for_selector("body[data-ready]", timeout=30000)
            assert page.text_content("#verdict") == f"Receipt verified: generation {g.index} is on the log"
            checks = {li.get_attribute("data-check"): li.get_attribute("data-ok") for li in page.query_selector_all("#checks li")}
            r = world["client"].get(f"/v1/generations/{g.index}/receipt").json()
            py = verify_receipt(Receipt.from_dict(r), world["key"])
            assert checks == {c.name: str(c.ok).lower() for c in py.checks} and py.ok
            assert errors == []
            b.close()
    finally:
        server.stop()


def test_cli_flags_a_generation(world):
    from typer.testing import CliRunner

    from glasslog.cli import app

    g = world["public"][1]
    r = CliRunner().invoke(app, ["flags", "add", "-c", "unfair", "--generation", str(g.index), "--text", "cli",
                                 "-d", str(world["data"]), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["generation"] == g.index and out["decision"] is None and out["model"] == world["fp"]
    r = CliRunner().invoke(app, ["flags", "add", "-c", "unfair", "--generation", "0", "-d", str(world["data"])])
    assert r.exit_code == 2 and "entry 0 is not a generation" in r.output
    r = CliRunner().invoke(app, ["flags", "list", "-d", str(world["data"])])
    assert f"generation {g.index}" in r.output
