"""What LLM applications already emit, onto the log: OpenTelemetry GenAI spans (OTLP/HTTP) and the requests an
OpenAI-compatible gateway forwards.

- ``otlp``: OTLP/HTTP bodies (protobuf or JSON, gzip) decoded with ``opentelemetry-proto``; responses and errors.
- ``genai``: a span's attributes and events, in the GenAI conventions (current and v1.36 and before), OpenLLMetry's
  or OpenInference's names, mapped onto one record.
- ``ingestor``: identity (API key, resource), model resolution, one ``generation`` entry per span, duplicates,
  evaluations and unregistered models as findings.
- ``content``: a span's messages sent apart as log records, joined to its generation whichever arrives first.
- ``embeddings``: embeddings spans as ``decision`` entries where the deployment declares it.
- ``gateway``: ``glasslog gateway --upstream URL``, a reverse proxy for the OpenAI chat completions and completions
  API that logs each response as a ``generation`` entry and hands back a receipt; ``openai_wire``: what that API's
  requests, responses and streams say.

Everything that arrives here is self-reported by the application (or, at the gateway, what the upstream server
answered): glasslog checks its form and who sent it, not that the named model made it. Binding a generation to the
registered weights needs replay (``glasslog verify replay``).
"""

from .genai import GenAIRecord, map_span
from .ingestor import Ingestor, IngestResult
from .otlp import OtlpError, decode_request

__all__ = ["Ingestor", "IngestResult", "GenAIRecord", "map_span", "OtlpError", "decode_request"]
