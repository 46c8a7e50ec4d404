"""The schema of a scenario file (TOML), as a pydantic model.

A scenario file says, in data, what the scenario lab simulates and measures:

- ``id``, ``version``, ``title``: the scenario's name and the version of its file
  (bumped whenever a parameter or the mechanism changes, so a report names the
  exact scenario it ran).
- ``description`` and ``mechanism``: what goes wrong, and how the simulation
  produces it.
- ``evidence``: citations, each with the figures it reports (an empty list of
  figures marks a qualitative source).
- ``data``: ``synthetic`` or the real data set the scenario runs on
  (``german_credit``, ``compas``).
- ``actors``: who oversees, by role, and which methods each may use; a method's
  ``needs`` say what access it requires (``weights`` can only be had through
  the access policy of the regime in force, see ``glasslog.scenarios.regimes``).
- ``harms``: what is counted as harm, with its unit.
- ``parameters``: every number the simulation uses, each with its ``source`` (a
  citation key from ``evidence``) or ``"assumption"``; ``sensitivity`` lists
  values the report's sensitivity section runs it at.
- ``measured`` / ``modelled``: which outputs come from running glasslog's
  components and which are modelled, stated in the report as written here.

``glasslog scenarios show <id> --json`` prints a validated file;
``docs/scenario.schema.json`` is the JSON Schema exported from this model
(``write_json_schema``).
"""

from __future__ import annotations

import json
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import BadInputError

__all__ = [
    "ScenarioError",
    "Figure",
    "Citation",
    "Method",
    "Actor",
    "Harm",
    "Parameter",
    "Scenario",
    "NEEDS",
    "load_scenario",
    "load_scenario_file",
    "scenario_ids",
    "KINDS",
    "check_kind",
    "json_schema",
    "write_json_schema",
]

NEEDS = ("public-log", "outputs", "outcomes", "protected-attributes", "flags", "queries", "weights")
"""What a method may need: the public log (entries, counts), decision outputs
of private deployments, outcomes, protected attributes of inputs, people's
flags, query access to the model (black-box), the model weights (white-box)."""

ROLE_NAMES = ("public", "subject", "developer", "researcher", "supervisor", "operator")


class ScenarioError(BadInputError):
    """A scenario file is missing, unreadable or fails the schema; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Figure(_Strict):
    """A figure a source reports: what it is, its value and unit (e.g. lag of open models, 3, months)."""

    what: str = Field(min_length=1)
    value: float | str
    unit: str = ""


class Citation(_Strict):
    """A source: ``key`` (used by parameters' ``source``), authors, year, title, where (URL or DOI), figures reported."""

    key: str = Field(min_length=1, pattern=r"^[a-z0-9_-]+$")
    authors: str = Field(min_length=1)
    year: int = Field(ge=1900, le=2100)
    title: str = Field(min_length=1)
    where: str = Field(min_length=1)
    figures: tuple[Figure, ...] = ()
    note: str = ""


class Method(_Strict):
    """An oversight method an actor may use: its name (the detector in the runner), what it needs and does."""

    name: str = Field(min_length=1, pattern=r"^[a-z0-9-]+$")
    needs: tuple[str, ...] = Field(min_length=1)
    description: str = Field(min_length=1)

    @field_validator("needs")
    @classmethod
    def _known_needs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in value if n not in NEEDS]
        if unknown:
            raise ValueError(f"unknown needs {unknown}; known: {', '.join(NEEDS)}")
        return value


class Actor(_Strict):
    """An overseer (or operator) in the scenario: a glasslog role and the methods it may use.

    Whether it can use a method needing ``weights`` depends on the regime: it
    asks for the weights through the access policy and is refused or not.
    """

    role: Literal["public", "subject", "developer", "researcher", "supervisor", "operator"]
    name: str = Field(min_length=1)
    methods: tuple[Method, ...] = ()


class Harm(_Strict):
    """What is counted as harm: name, unit (e.g. ``decisions``), description."""

    name: str = Field(min_length=1)
    unit: str = Field(min_length=1)
    description: str = Field(min_length=1)


class Parameter(_Strict):
    """A number the simulation uses, with its source (a citation key) or ``assumption``."""

    name: str = Field(min_length=1, pattern=r"^[a-z0-9_]+$")
    value: float | int | bool
    unit: str = ""
    description: str = Field(min_length=1)
    source: str = Field(min_length=1)
    sensitivity: tuple[float, ...] = ()


class Scenario(_Strict):
    """One scenario file (see the module docstring for the fields)."""

    id: str = Field(min_length=1, pattern=r"^[a-z0-9-]+$")
    version: int = Field(ge=1)
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    mechanism: str = Field(min_length=1)
    data: Literal["synthetic", "german_credit", "compas"]
    evidence: tuple[Citation, ...] = Field(min_length=1)
    actors: tuple[Actor, ...] = Field(min_length=1)
    harms: tuple[Harm, ...] = Field(min_length=1)
    parameters: tuple[Parameter, ...] = Field(min_length=1)
    measured: tuple[str, ...] = Field(min_length=1)
    modelled: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _sources_exist(self) -> Scenario:
        keys = {c.key for c in self.evidence}
        if len(keys) != len(self.evidence):
            raise ValueError("evidence: citation keys must be unique")
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ValueError("parameters: names must be unique")
        for i, p in enumerate(self.parameters):
            if p.source != "assumption" and p.source not in keys:
                raise ValueError(f"parameters[{i}] ({p.name}): source {p.source!r} is neither 'assumption' nor a citation key"
                                 f" in evidence ({', '.join(sorted(keys))})")
        return self

    def parameter(self, name: str) -> float | int | bool:
        """The value of parameter ``name``.

        Raises:
            KeyError: no such parameter.
        """
        for p in self.parameters:
            if p.name == name:
                return p.value
        raise KeyError(f"scenario {self.id} has no parameter {name!r}")

    def methods(self) -> list[tuple[Actor, Method]]:
        """Every (actor, method) pair, in file order."""
        return [(a, m) for a in self.actors for m in a.methods]

    def with_parameters(self, **values: float | int | bool) -> Scenario:
        """A copy with some parameter values replaced (for the sensitivity runs).

        Raises:
            KeyError: an unknown parameter name.
        """
        known = {p.name for p in self.parameters}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(f"scenario {self.id} has no parameters {unknown}")
        params = tuple(p.model_copy(update={"value": values[p.name]}) if p.name in values else p for p in self.parameters)
        return self.model_copy(update={"parameters": params})


def _format_error(exc: ValidationError, where: str) -> str:
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"]) or "(file)"
        parts.append(f"field '{loc}': {e['msg']}")
    return f"{where}: " + "; ".join(parts)


def load_scenario_file(path: str | Path) -> Scenario:
    """Read and validate a scenario TOML file.

    Raises:
        ScenarioError: unreadable, not TOML, or failing the schema (naming the field).
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file {p}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{p}: not valid TOML: {exc}") from None
    return _validate(data, str(p))


def _validate(data: dict, where: str) -> Scenario:
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_format_error(exc, where)) from None
    check_kind(scenario, where)
    return scenario


KINDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "whimper": (frozenset({"periods", "cases_per_period", "training_cases", "incident_intercept", "incident_severity_slope",
                           "gaming_start_min", "gaming_start_max", "gaming_ramp_per_period", "outcome_delay_periods",
                           "survey_open_case_weight", "survey_noise_sd", "flag_rate_wrongly_dismissed", "flag_rate_noise",
                           "rater_helpful_genuine", "rater_helpful_noise", "raters_per_flag", "window_decisions",
                           "probe_gap_threshold", "alpha", "triage_delay_periods"}),
                frozenset({"goodhart", "realised-vs-claimed", "flags", "probe-whitebox"})),
    "bang": (frozenset({"systems", "periods", "decisions_per_period", "training_rows", "treacherous_share",
                        "trigger_prevalence_normal", "trigger_prevalence_shock", "shock_period_min", "shock_period_max",
                        "shock_load_shift", "cascade_gain", "baseline_periods", "scan_flip_threshold", "alpha",
                        "triage_delay_periods"}),
             frozenset({"output-anomaly", "weights-scan"})),
    "deceptive-credit": (frozenset({"decisions_per_period", "outcome_delay_periods", "group_gap_threshold",
                                    "shortcut_flip_threshold", "audit_query_budget", "blackbox_min_rows", "alpha",
                                    "triage_delay_periods"}),
                         frozenset({"realised-vs-claimed", "group-error-rates", "shortcut-whitebox", "shortcut-blackbox"})),
    "downstream-adaptation": (frozenset({"pilot_rows", "pilot_weight", "developer_query_budget", "decisions_per_period",
                                         "outcome_delay_periods", "group_gap_threshold", "alpha", "triage_delay_periods"}),
                              frozenset({"pilot-whitebox", "pilot-blackbox", "realised-vs-claimed", "group-error-rates"})),
}
"""The built-in scenario kinds: id -> (parameters its world reads, methods it has detectors for).

A scenario file parameterises one of the worlds in ``glasslog.scenarios.worlds``:
its ``id`` must be one of these kinds, it must give every parameter the world
reads (plus the off-record ones, ``OFFRECORD_PARAMETERS``), and its actors may
only use methods the world implements. A new kind of scenario needs code."""

OFFRECORD_PARAMETERS = frozenset({"fork_share_developers", "fork_share_public", "substitute_share_frontier",
                                  "capability_halflife_months", "lag_months"})
"""Parameters every scenario needs for the modelled off-record share and the capability lag."""


def check_kind(scenario: Scenario, where: str = "scenario") -> None:
    """Check that ``scenario`` fits its built-in world (``KINDS``).

    Raises:
        ScenarioError: an ``id`` that is not a built-in kind, a missing parameter, or a method without a detector
            (the message names ``where`` and the field).
    """
    if scenario.id not in KINDS:
        raise ScenarioError(f"{where}: field 'id': {scenario.id!r} is not a built-in scenario kind ({', '.join(KINDS)});"
                            " scenario files are tied to code: a file parameterises one of the worlds in"
                            " glasslog.scenarios.worlds, and a new kind needs a new world")
    params, methods = KINDS[scenario.id]
    missing = sorted((params | OFFRECORD_PARAMETERS) - {p.name for p in scenario.parameters})
    if missing:
        raise ScenarioError(f"{where}: field 'parameters': missing {', '.join(missing)} (the {scenario.id} world reads them)")
    for i, a in enumerate(scenario.actors):
        for j, m in enumerate(a.methods):
            if m.name not in methods:
                raise ScenarioError(f"{where}: field 'actors.{i}.methods.{j}.name': {m.name!r} is not a method of the"
                                    f" {scenario.id} world ({', '.join(sorted(methods))})")


def _data_files() -> list:
    """The shipped scenario files (``NN-<name>.toml`` in ``glasslog/scenarios/data``), in file-name order."""
    folder = files("glasslog.scenarios").joinpath("data")
    return sorted((f for f in folder.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)


def _shipped() -> dict[str, tuple[str, dict]]:
    """id -> (file name, parsed TOML) of every shipped scenario file, selected by the ``id`` field inside the file.

    Raises:
        ScenarioError: a file that is not TOML, has no string ``id``, or repeats another file's ``id`` (naming the files).
    """
    out: dict[str, tuple[str, dict]] = {}
    for f in _data_files():
        try:
            data = tomllib.loads(f.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"scenario file {f.name}: not valid TOML: {exc}") from None
        sid = data.get("id")
        if not isinstance(sid, str) or not sid:
            raise ScenarioError(f"scenario file {f.name}: field 'id': missing or not a string")
        if sid in out:
            raise ScenarioError(f"scenario files {out[sid][0]} and {f.name}: both have id {sid!r}; ids must be unique")
        out[sid] = (f.name, data)
    return out


def scenario_ids() -> list[str]:
    """Ids of the scenarios shipped with glasslog (each file's ``id`` field), in file-name order.

    Raises:
        ScenarioError: a shipped file is unreadable or two files share an id.
    """
    return list(_shipped())


def load_scenario(scenario_id: str) -> Scenario:
    """Load a shipped scenario by its ``id`` (the field inside the file, not the file name).

    Raises:
        ScenarioError: no such scenario (the message lists the known ids), or its file fails the schema or
            does not fit its world (the message names the file and the field).
    """
    shipped = _shipped()
    if scenario_id not in shipped:
        raise ScenarioError(f"unknown scenario {scenario_id!r}; known: {', '.join(shipped)}")
    name, data = shipped[scenario_id]
    return _validate(data, f"scenario file {name}")


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a scenario file."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "glasslog scenario file"
    return schema


def write_json_schema(path: str | Path) -> None:
    """Write ``json_schema()`` to ``path`` (sorted keys, two-space indent, trailing newline)."""
    Path(path).write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
