"""The scenario lab: scenario files, regimes through the access policy, worlds on real logs, report, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from glasslog.cli import app
from glasslog.ledger import Ledger
from glasslog.registry import Registry
from glasslog.scenarios import adapters, gaming
from glasslog.scenarios.engine import make_card
from glasslog.scenarios.regimes import REGIMES, WeightsRefused, make_actors, roles_with_weights
from glasslog.scenarios.report import _actor_table, _insights, render_markdown
from glasslog.scenarios.runner import LabResult, RegimeSummary, ScenarioResult, mean_ci, offrecord_share, run_scenario
from glasslog.scenarios.schema import (
    ScenarioError,
    json_schema,
    load_scenario,
    load_scenario_file,
    scenario_ids,
)
from glasslog.scenarios.worlds import run_world

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield


# ------------------------------------------------------------------------------------------ scenario files
def test_shipped_scenarios_validate_and_cite_their_sources():
    assert scenario_ids() == ["whimper", "bang", "deceptive-credit", "downstream-adaptation"]
    for sid in scenario_ids():
        s = load_scenario(sid)
        keys = {c.key for c in s.evidence}
        assert all(p.source == "assumption" or p.source in keys for p in s.parameters)
        for p in s.parameters:  # a cited source must report the parameter's value among its figures
            if p.source != "assumption":
                figures = {f.value for c in s.evidence if c.key == p.source for f in c.figures}
                assert p.value in figures, f"{sid}: {p.name} = {p.value} is not a figure of {p.source}"
        assert s.parameter("lag_months") == 4 and s.parameter("alpha") == 0.01
        lag = next(p for p in s.parameters if p.name == "lag_months")
        assert lag.source == "epoch2026" and tuple(lag.sensitivity) == (0, 12, 24)
    epoch = next(c for c in load_scenario("whimper").evidence if c.key == "epoch2026")
    assert [f.value for f in epoch.figures] == [4, 3]


def test_json_schema_in_docs_is_the_exported_one():
    on_disk = json.loads((ROOT / "docs" / "scenario.schema.json").read_text())
    assert on_disk == json.loads(json.dumps(json_schema()))
    assert set(on_disk["required"]) >= {"id", "version", "evidence", "parameters", "measured", "modelled"}


def test_bad_scenario_files_are_refused_naming_the_field(tmp_path):
    src = (ROOT / "src/glasslog/scenarios/data/01-whimper.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(src.replace('source = "epoch2026"', 'source = "nowhere2030"'))
    with pytest.raises(ScenarioError, match=r"lag_months.*'nowhere2030' is neither 'assumption' nor a citation key"):
        load_scenario_file(bad)
    bad.write_text(src.replace('needs = ["weights"]', 'needs = ["telepathy"]', 1))
    with pytest.raises(ScenarioError, match=r"field 'actors\.0\.methods\.1\.needs'.*unknown needs \['telepathy'\]"):
        load_scenario_file(bad)
    bad.write_text("id = [")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario_file(bad)
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load_scenario_file(tmp_path / "missing.toml")
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'; known: whimper, bang"):
        load_scenario("nope")
    with pytest.raises(KeyError, match="no parameters"):
        load_scenario("bang").with_parameters(nonsense=1)


# ------------------------------------------------------------------------------------------ regimes and actors
def test_more_access_never_removes_a_weights_holder():
    holders = [roles_with_weights(g) for g in REGIMES]
    assert holders[0] == frozenset() and holders[1] == {"supervisor"} and holders[2] == {"supervisor", "researcher"}
    assert holders[3] == {"supervisor", "researcher", "developer"} and {"public", "subject"} <= holders[4]
    for a, b in zip(holders, holders[1:]):
        assert a <= b
    with pytest.raises(ValueError, match="unknown regime 'secret'"):
        roles_with_weights("secret")


@pytest.fixture
def credit_log(tmp_path):
    """A log with the German Credit shortcut model registered under the 'supervisors' policy."""
    d = adapters.shortcut_data(1000, control=False)
    ledger = Ledger.create(tmp_path / "log", "scenario-lab.example/test")
    card = make_card("loan default", "1", d.X_train, d.X_eval, {"accuracy": d.claimed_accuracy}, "supervisors", features=d.features)
    fp = Registry(ledger).register(d.model, card).fingerprint
    yield ledger, fp, d, tmp_path / "log"
    ledger.close()


def test_actor_without_weights_gets_the_policys_refusal_and_cannot_run_a_whitebox_audit(credit_log):
    ledger, fp, d, data_dir = credit_log
    actors = make_actors(ledger, {"researcher": "a lab", "supervisor": "the authority", "developer": "a fintech", "public": "anyone"})
    size = ledger.size
    for role in ("researcher", "developer", "public"):
        assert actors[role].principal.role == role
        with pytest.raises(WeightsRefused, match=f"disclosure policy .* is 'supervisors'; role {role} may not download its weights"):
            actors[role].obtain_weights(fp)
    assert ledger.size == size and not list(ledger.entries_of_type("access"))  # a refusal writes nothing
    # the same principal is refused by glasslog's white-box audit and by the server's artifact route
    from glasslog.access import KeyStore
    from glasslog.audit.whitebox import WeightsAccessError, load_registered_model
    from glasslog.server import create_app

    with pytest.raises(WeightsAccessError):
        load_registered_model(ledger, fp, actors["researcher"].principal)
    _, token = KeyStore(ledger).create("researcher", "a lab (HTTP)")
    client = TestClient(create_app(data_dir))
    assert client.get(f"/v1/models/{fp}/artifact", headers={"Authorization": f"Bearer {token}"}).status_code == 403
    # the supervisor gets the weights, the download is on the log, and the white-box audit finds the shortcut
    model = actors["supervisor"].obtain_weights(fp)
    access = [e for _, e in ledger.entries_of_type("access")]
    assert [(e["role"], e["model"], e["key_id"]) for e in access] == [("supervisor", fp, actors["supervisor"].principal.key_id)]
    check = adapters.whitebox_shortcut(model, d.X_audit, np.random.default_rng(0), 0.2)
    assert check.alert and check.evidence["feature"] == "file_version" and check.value == pytest.approx(49 / 150)


# ------------------------------------------------------------------------------------------ worlds
def test_deceptive_credit_world_measures_real_figures_and_the_kill_switch():
    s = load_scenario("deceptive-credit").with_parameters(audit_query_budget=0)  # no black-box audit: detection must wait
    closed = run_world(s, "closed", 1000)
    assert closed.extra["claimed_accuracy"] == pytest.approx(0.96) and closed.extra["realised_accuracy"] == pytest.approx(212 / 300)
    assert {m for _, m in closed.methods_refused} == {"shortcut-whitebox"} and closed.weights_downloads == 0
    assert closed.detected and closed.alerts[0].method == "realised-vs-claimed" and closed.alerts[0].role == "supervisor"
    assert closed.detection > 0 and closed.harm_before_detection > 0
    assert closed.suspended and closed.logged_after_suspension == 0 and closed.refused_after_suspension > 0
    assert closed.decisions < 300  # the suspension stopped the rest of the 300 applicants
    opened = run_world(s, "open", 1000)
    assert not opened.methods_refused and opened.weights_downloads == 4  # each actor's own download, logged
    assert opened.detection == 0 and opened.harm_before_detection == 0 and opened.alerts[0].method == "shortcut-whitebox"
    assert opened.decisions == 25 and opened.logged_after_suspension == 0  # one period until the suspension (triage delay)


def test_each_actor_asks_for_the_weights_itself_and_the_actor_table_agrees_with_the_policy():
    # Before the fix the first actor's download let later actors skip the policy, and the table called that "granted".
    s = load_scenario("deceptive-credit")
    res = run_scenario(s, reps=1, seed=0, lag_months=4.0, regimes=("closed", "supervisors"), gaming=False)
    sup = res.regimes["supervisors"]
    assert sup.methods_granted == ["supervisor/shortcut-whitebox"]
    assert sup.methods_refused == ["developer/shortcut-whitebox", "public/shortcut-whitebox", "researcher/shortcut-whitebox"]
    assert res.regimes["closed"].methods_granted == [] and len(res.regimes["closed"].methods_refused) == 4
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): [c.strip() for c in line.strip("|").split("|")[3:5]]
            for line in _actor_table(res).splitlines()[2:]}
    for (actor, method), (closed, supervisors) in rows.items():
        if method != "shortcut-whitebox":
            continue
        role = actor.split(" ")[0]
        assert closed == "refused (no weights)"
        assert supervisors == ("weights granted" if role in roles_with_weights("supervisors") else "refused (no weights)")
    assert sum(1 for (_, m), cells in rows.items() if m == "shortcut-whitebox" and cells[1] == "weights granted") == 1


def test_more_access_never_removes_a_detector_and_closed_suspensions_stop_logged_use():
    s = load_scenario("whimper").with_parameters(periods=8, cases_per_period=40, window_decisions=80, gaming_start_min=2,
                                                 gaming_start_max=2)
    runs = {g: run_world(s, g, 7) for g in REGIMES}
    for a, b in zip(REGIMES, REGIMES[1:]):
        assert runs[a].methods_used <= runs[b].methods_used
        assert {m for _, m in runs[b].methods_refused} <= {m for _, m in runs[a].methods_refused} | set()
        assert len(runs[b].methods_refused) <= len(runs[a].methods_refused)
    assert "probe-whitebox" not in runs["closed"].methods_used and "probe-whitebox" in runs["supervisors"].methods_used
    closed = runs["closed"]
    assert closed.onset == 80 and closed.detected
    assert closed.suspended and closed.logged_after_suspension == 0 and closed.refused_after_suspension >= 1
    # the same seed gives every regime the same cases: before any suspension they logged the same decisions
    assert runs["supervisors"].detection <= closed.detection


def test_cost_to_game_without_and_with_the_weights():
    d = adapters.downstream_data(1000, control=False, pilot=80)
    refused = d.X_deploy[d.base_model.predict_proba(d.X_deploy)[:, 1] >= 0.5].head(5)
    bb = gaming.game(d.base_model, d.X_train, refused, "blackbox")
    wb = gaming.game(d.base_model, d.X_train, refused, "whitebox", local=d.base_model)
    assert bb.applicants == wb.applicants == 5
    assert bb.queries.min() > 0 and wb.queries.sum() == 0
    assert wb.flipped == bb.flipped  # the same greedy search; only what it evaluates on differs
    assert gaming.surrogate_rows(400, 12, 6) == 100 and gaming.surrogate_rows(400, 0, 6) == 400
    with pytest.raises(ValueError, match="whitebox search needs the local model"):
        gaming.game(d.base_model, d.X_train, refused, "whitebox")


def test_offrecord_share_is_modelled_from_the_parameters():
    p = {q.name: q.value for q in load_scenario("bang").parameters}
    assert offrecord_share(p, "closed", 0) == pytest.approx(0.1)
    assert offrecord_share(p, "closed", 6) == pytest.approx(0.05)
    assert offrecord_share(p, "open", 0) == pytest.approx(1 - 0.5 * 0.9)
    shares = [offrecord_share(p, g, 4) for g in REGIMES]
    assert shares == sorted(shares)


# ------------------------------------------------------------------------------------------ determinism and report
def test_same_seed_gives_byte_identical_markdown():
    s = load_scenario("deceptive-credit")

    def once() -> str:
        res = run_scenario(s, reps=1, seed=3, lag_months=4.0)
        return render_markdown(LabResult(1, 3, 4.0, [res]))

    a, b = once(), once()
    assert a == b
    assert "## Scenario 1: Deceptive alignment in a loan-default model" in a
    assert "## What is measured and what is modelled" in a and "**Modelled**" in a
    assert "| closed | 1 | 100 % [" in a and "### Cost to game the model (measured on German Credit)" in a


def test_cli_run_writes_the_report_and_refuses_bad_input(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["scenarios", "run", "--out", ""])
    assert r.exit_code == 2 and "--out: an empty path" in r.output
    for args, message in ((["--reps", "0"], "--reps must be between 1 and 200"), (["--reps", "201"], "200 take about 3.5 hours"),
                          (["--scenario", "nope"], "unknown scenario 'nope'"),
                          (["--lag-months", "-3"], "--lag-months must be between 0 and 120"),
                          (["--seed", "-1"], "--seed must be a non-negative integer")):
        r = runner.invoke(app, ["scenarios", "run", *args, "--out", str(tmp_path / "x")])
        assert r.exit_code == 2, r.output
        assert message in " ".join(r.output.split())
    (tmp_path / "file").write_text("")
    r = runner.invoke(app, ["scenarios", "run", "--out", str(tmp_path / "file")])
    assert r.exit_code == 2 and "exists and is not a directory" in " ".join(r.output.split())
    r = runner.invoke(app, ["scenarios", "show", "bang", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["id"] == "bang"
    r = runner.invoke(app, ["scenarios", "show", "deceptive-credit"], terminal_width=200)
    text = " ".join(r.output.split())
    assert r.exit_code == 0 and "Mechanism. The real German Credit data (1,000 applicants)" in text
    assert ("- [epoch2026] Jack Edwards, Luke Emberson (Epoch AI) (2026). Open models lag state-of-the-art closed models by"
            " 4 months. https://epoch.ai/data-insights/open-closed-eci-gap average lag of open-weight models on the Epoch"
            " Capabilities Index since January 2026: 4 months") in text
    r = runner.invoke(app, ["scenarios", "run", "-s", "downstream-adaptation", "--reps", "1", "--no-sensitivity", "--json",
                            "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    regimes = data["scenarios"][0]["regimes"]
    assert regimes["closed"]["methods_refused"] == ["developer/pilot-whitebox"] and regimes["developers"]["methods_refused"] == []
    assert regimes["developers"]["extra"]["adapted"] in (0.0, 1.0)
    assert not math.isnan(regimes["open"]["offrecord"]["frontier"])
    for name in ("report.md", "report.html", "results.json"):
        assert (tmp_path / "rep" / name).stat().st_size > 1000
    assert "data:image/png;base64," in (tmp_path / "rep" / "report.html").read_text()
    html = (tmp_path / "rep" / "report.html").read_text()
    results_table, img = html.index("<h3>Results by regime (measured)</h3>"), html.index("<img")
    assert results_table < img < html.index("<h3>Which check raised the alerts")  # the plot beside its table
    assert 'alt="downstream-adaptation: bar charts by regime of the share of problem runs detected' in html
    assert not [p.name for p in (tmp_path / "rep").iterdir() if p.name.startswith(".report-")]
    # the "Run it again" command, parsed back by the CLI itself, gives exactly the options of this run
    md = (tmp_path / "rep" / "report.md").read_text()
    command = md.split("Run it again with `", 1)[1].split("`", 1)[0]
    assert _parsed_run_options(command) == _parsed_run_options(
        "glasslog scenarios run -s downstream-adaptation --reps 1 --no-sensitivity --seed 0")


def _parsed_run_options(command: str) -> dict:
    import shlex

    import typer

    words = shlex.split(command)
    assert words[:3] == ["glasslog", "scenarios", "run"]
    run_cmd = typer.main.get_command(app).commands["scenarios"].commands["run"]
    params = run_cmd.make_context("run", words[3:]).params
    params.pop("out_dir"), params.pop("json_out")  # where and how it is written, not what is run
    return params


def test_rerun_command_reproduces_every_option():
    res = LabResult(7, 42, 12.5, [], selected=["bang", "whimper"], sensitivity_on=False)
    from glasslog.scenarios.report import rerun_command

    assert _parsed_run_options(rerun_command(res)) == {"scenario": ["bang", "whimper"], "reps": 7, "seed": 42,
                                                       "lag_months": 12.5, "no_sensitivity": True}
    default = LabResult(10, 0, float("nan"), [])
    assert _parsed_run_options(rerun_command(default)) == {"scenario": (), "reps": 10, "seed": 0, "lag_months": None,
                                                           "no_sensitivity": False}


def test_a_failed_pilot_through_queries_stops_the_launch_and_nothing_is_logged():
    s = load_scenario("downstream-adaptation").with_parameters(developer_query_budget=100)
    r = run_world(s, "closed", 0)
    assert r.extra["pilot_mode"] == "queries" and r.extra["claimed_accuracy"] == pytest.approx(152 / 189)
    assert r.detection == 0 and [a.method for a in r.alerts] == ["pilot-blackbox"]
    assert r.decisions == 0 and r.harm_total == 0 and r.logged_after_suspension == 0 and r.refused_after_suspension > 0


# ------------------------------------------------------------------------------------------ what the report concludes
def _summary(regime: str, **kw) -> RegimeSummary:
    base = dict(regime=regime, reps=10, detect_p=1.0, detect_lo=0.72, detect_hi=1.0, time_median=0.0, time_q1=0.0, time_q3=0.0,
                detected_n=10, harm_mean=5.0, harm_lo=2.0, harm_hi=8.0, harm_total_mean=9.0, harm_total_lo=6.0,
                harm_total_hi=12.0, controls=10, alerts_by_method={}, runs_alert_before_onset=0, false_alarm_p=0.0,
                false_alarm_lo=0.0, false_alarm_hi=0.28, false_alarms_mean=0.0, methods_used=["audit", "noisy"],
                methods_refused=[], methods_granted=[], first_detector={}, suspensions=10, logged_after_suspension=0,
                refused_after_suspension=10, offrecord={"frontier": 0.1, "lagging": 0.06},
                stops_use={"frontier": 0.9, "lagging": 0.94})
    return RegimeSummary(**(base | kw))


def test_mean_interval_of_a_count_never_goes_below_zero():
    values = [0.0] * 9 + [30.0]  # a normal interval would be 3 +- 1.96 * 9.49 / sqrt(10) = [-2.9, 8.9]
    m, lo, hi = mean_ci(values)
    assert m == 3.0 and lo == 0.0 and 0 < hi <= 9.0
    assert mean_ci(values) == (m, lo, hi)  # a fixed resampling stream: the same report for a seed
    assert mean_ci([]) == (None, None, None) and mean_ci([4.0]) == (4.0, 4.0, 4.0)


def test_insights_weigh_false_alarms_and_do_not_rank_overlapping_regimes():
    noisy = {"noisy": {"problem": 3, "control": 4}, "audit": {"problem": 10, "control": 0}}
    regimes = {"closed": _summary("closed", harm_mean=6.0, harm_lo=3.0, harm_hi=9.0, alerts_by_method=noisy,
                                  first_detector={"noisy": 3, "audit": 7}),
               "open": _summary("open", harm_mean=4.0, harm_lo=1.0, harm_hi=7.0, alerts_by_method=noisy,
                                harm_total_mean=8.0, harm_total_lo=5.0, harm_total_hi=11.0, first_detector={"audit": 10})}
    sr = ScenarioResult(load_scenario("deceptive-credit"), regimes)
    text = "\n".join(_insights(sr))
    assert ("Neither detection (100 %-100 %) nor harm over the run (8.0-9.0) differs clearly between regimes: their 95 %"
            " intervals overlap at 10 runs per regime, so this run does not rank the regimes.") in text
    assert "Least harm" not in text and "clearly lower" not in text
    assert ("noisy alerted in 8/20 clean control runs and in 6/20 problem runs (over the regimes where it ran): it fires at"
            " least as often without the problem, so its alerts are not evidence of detection; it raised the detecting"
            " alert in 3 of the 20 detected runs.") in text
    assert "audit alerted" not in text  # no false alarms: nothing to weigh
    # clearly apart: then, and only then, a ranking
    regimes["open"] = _summary("open", harm_total_mean=2.0, harm_total_lo=1.0, harm_total_hi=3.0)
    text = "\n".join(_insights(ScenarioResult(sr.scenario, regimes)))
    assert "Harm over the run is clearly lower under open (2.0 [1.0, 3.0]) than under closed (9.0 [6.0, 12.0])." in text


def test_a_conclusion_names_the_sensitivity_run_that_overturns_it_and_every_declared_value_is_reported():
    s = load_scenario("deceptive-credit")
    regimes = {g: _summary(g) for g in ("closed", "open")}
    sens = [{"scenario": s.id, "parameter": "audit_query_budget", "value": 0, "default": 2200, "reps": 2,
             "regimes": {"closed": {"detect_p": 1.0, "harm_mean": 62.0}, "open": {"detect_p": 1.0, "harm_mean": 0.0}}}]
    res = LabResult(10, 0, float("nan"), [ScenarioResult(s, regimes), ScenarioResult(load_scenario("whimper"), regimes)], sens)
    first = _insights(res.scenarios[0], res)[0]
    assert first.startswith("Every regime measured the same detection (100 %) and harm over the run (9.0)")
    assert ("This depends on the assumptions: the comparison comes out differently at audit_query_budget = 0 (default 2200;"
            " 2 runs per regime): detection 100 %-100 %, harm before detection 0.0-62.0 across regimes, lowest under open.") in first
    md = render_markdown(res)
    for v in ("0.2 (default)", "0.05", "0.5"):  # declared but never run: computed from the modelled formula
        assert f"| deceptive-credit | fork_share_developers = {v} |" in md
    assert "| deceptive-credit, whimper | closed | 10 % | 6 % | 3 % | 1 % |" in md  # one lag table for one formula
    assert md.count("| deceptive-credit, whimper | open |") == 1
    assert "median and\ninterquartile range are over **detected runs only**" in md and "an **undetected run contributes all" in md
    assert "**Most numbers behind these scenarios are assumptions.**" in md


def test_custom_or_broken_scenario_files_exit_2_naming_the_file_and_field(tmp_path, monkeypatch):
    from glasslog.scenarios import schema

    data = ROOT / "src/glasslog/scenarios/data"
    whimper = (data / "01-whimper.toml").read_text()
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setattr(schema, "_data_files", lambda: sorted(folder.iterdir(), key=lambda f: f.name))
    runner = CliRunner()

    def fails(args: list[str], message: str) -> None:
        r = runner.invoke(app, ["scenarios", *args])
        assert r.exit_code == 2 and message in " ".join(r.output.split()), r.output
        assert r.exception is None or isinstance(r.exception, SystemExit)  # no traceback

    (folder / "01-whimper.toml").write_text(whimper.replace("mechanism = ", "mechanism_ = ", 1))
    fails(["list"], "scenario file 01-whimper.toml: field 'mechanism': Field required")
    fails(["run", "--reps", "1", "--out", str(tmp_path / "o")], "field 'mechanism': Field required")
    # a new id under any file name is selected by its id, and refused: scenarios are tied to the worlds in code
    (folder / "01-whimper.toml").write_text(whimper.replace('id = "whimper"', 'id = "my-whimper"', 1))
    fails(["run", "-s", "my-whimper", "--out", str(tmp_path / "o")],
          "scenario file 01-whimper.toml: field 'id': 'my-whimper' is not a built-in scenario kind")
    fails(["show", "whimper"], "unknown scenario 'whimper'; known: my-whimper")  # by id, never by file name
    start = whimper.index('name = "window_decisions"')
    (folder / "01-whimper.toml").write_text(whimper[:start] + 'name = "window_decisions_x"' + whimper[start + 25:])
    fails(["show", "whimper"], "scenario file 01-whimper.toml: field 'parameters': missing window_decisions")
    (folder / "01-whimper.toml").write_text(whimper)
    (folder / "09-copy.toml").write_text(whimper)
    fails(["list"], "scenario files 01-whimper.toml and 09-copy.toml: both have id 'whimper'")
    (folder / "09-copy.toml").unlink()
    assert runner.invoke(app, ["scenarios", "list", "--json"]).exit_code == 0 and schema.scenario_ids() == ["whimper"]


def test_a_failed_write_leaves_no_partial_report(tmp_path, monkeypatch):
    from glasslog.scenarios.report import write_report

    regimes = {g: _summary(g) for g in ("closed", "open")}
    res = LabResult(10, 0, float("nan"), [ScenarioResult(load_scenario("bang"), regimes)])
    real = Path.write_text

    def failing(self, text, *a, **kw):
        if self.name == "results.json":
            raise OSError(28, "No space left on device")
        return real(self, text, *a, **kw)

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(OSError, match="No space left"):
        write_report(res, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # neither report.md nor report.html, no temporary directory
