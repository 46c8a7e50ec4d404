"""The server's routes, one module per resource, each an ``APIRouter`` with its own request and response models.

| module | routes |
|---|---|
| ``tiles`` | ``/checkpoint``, ``/tile/...``: C2SP tlog-tiles, the read side for verifiers |
| ``log`` | ``/v1/log``, ``/v1/entries/{index}``, ``/v1/proofs/...``: the log and RFC 9162 proofs |
| ``models`` | ``/v1/models...``: the register of models, weights download, registration, status (the kill switch) |
| ``deployments`` | ``/v1/deployments...``: declared deployments and their aggregate counts |
| ``decisions`` | ``/v1/decisions...``, ``/v1/outcomes``, ``/v1/receipt``, ``/v1/receipts/{index}`` |
| ``generations`` | ``/v1/generations...``: a generative model's logged outputs and their receipts |
| ``keys`` | ``/v1/keys...``: API keys (operator) |
| ``flags`` | ``/v1/flags...``: flags and ratings |
| ``triage`` | ``/v1/triage...``: the supervisors' queue |
| ``replay`` | ``/v1/replay``: replay verification against the registered weights |
| ``monitors`` | ``/v1/monitors/run``, ``/v1/findings`` |
| ``watermark`` | ``/v1/watermark/detect``: watermark detection (supervisor) |
| ``pages`` | ``/``, ``/models/...``, ``/decisions...``, ``/flags``, ``/findings``, ``/reports...``, ``/receipt``, ``/console``: the web register (HTML) |

A route module imports from ``glasslog.server.deps`` (state, caller, checks),
``schemas`` (shared model bases and patterns), ``problems`` (errors) and the
domain packages, never from ``app`` or from another route module.
"""

from . import decisions, deployments, flags, generations, keys, log, models, monitors, pages, replay, tiles, triage, watermark

__all__ = ["API_ROUTERS", "pages"]

API_ROUTERS = [m.router for m in (tiles, log, models, deployments, decisions, generations, keys, flags, triage, replay,
                                   monitors, watermark)]
"""The routers of the API, in the order they are matched (the web pages' router comes after them)."""
