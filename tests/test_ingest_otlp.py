"""OTLP/HTTP ingestion end to end: the OpenTelemetry Python SDK, with its OTLP/HTTP exporters (protobuf and JSON),
instruments a small application that calls the test causal LM and exports into a running ``glasslog serve``; the
generations appear on the log, their receipts verify and their commitments open. Bad input on the same server."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from glasslog.ledger import Ledger

from .ingest_support import MODEL_NAME, build_test_model, glasslog_command, make_log, need_llm_stack, process

PUBLIC, PRIVATE = "acme.example/assistant", "acme.example/private-assistant"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    need_llm_stack()
    root = tmp_path_factory.mktemp("otlp")
    tl = make_log(root / "log", build_test_model(root), {PUBLIC: "public-service", PRIVATE: "private"})
    with process([*glasslog_command(), "serve", "--data-dir", str(tl.data_dir)], "/checkpoint", root / "serve.log") as base:
        yield base, tl


class App:
    """A small LLM application: the test model through transformers, traced with the OpenTelemetry SDK (GenAI
    semantic conventions, content capture on), exported by an OTLP/HTTP exporter."""

    def __init__(self, model_dir, exporter, service: str):
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from glasslog.demo.testmodels import load_causal_lm

        self.lm, self.tok = load_causal_lm(model_dir)
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("test-app")

    def chat(self, text: str, max_new_tokens: int = 12, evaluation: tuple[str, str] | None = None):
        import torch

        messages = [{"role": "user", "content": text}]
        with self.tracer.start_as_current_span(f"chat {MODEL_NAME}") as span:
            ids = self.tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            with torch.inference_mode():
                out = self.lm.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
            new = out[0, ids["input_ids"].shape[1]:]
            answer = self.tok.decode(new, skip_special_tokens=True)
            span.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "transformers",
                "gen_ai.request.model": MODEL_NAME, "gen_ai.response.model": MODEL_NAME,
                "gen_ai.request.max_tokens": max_new_tokens, "gen_ai.request.temperature": 0.0,
                "gen_ai.request.seed": 7, "gen_ai.usage.input_tokens": int(ids["input_ids"].shape[1]),
                "gen_ai.usage.output_tokens": int(new.shape[0]), "gen_ai.response.finish_reasons": ["length"],
                "gen_ai.conversation.id": "conv-1",
                "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}]),
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "finish_reason": "length",
                                                       "parts": [{"type": "text", "content": answer}]}])})
            if evaluation:
                span.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": evaluation[0],
                                                            "gen_ai.evaluation.score.label": evaluation[1],
                                                            "gen_ai.evaluation.score.value": 0.2,
                                                            "gen_ai.evaluation.explanation": "checked by the app"})
            ctx = span.get_span_context()
        return answer, f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"

    def flush(self):
        assert self.provider.force_flush(30_000)

    def close(self):
        self.provider.shutdown()


def _exporter(kind: str, base: str, key: str):
    headers = {"Authorization": f"Bearer {key}"}
    if kind == "protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(endpoint=base + "/v1/traces", headers=headers)


def _generations(tl, span_id: str) -> list[tuple[int, dict]]:
    with Ledger.open(tl.data_dir) as lg:
        return [(i, e) for i, e in lg.entries_of_type("generation") if e.get("span", {}).get("span_id") == span_id]


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_sdk_exports_generations_that_verify(served, encoding):
    from glasslog import capture
    from glasslog.verify.receipts import verify_receipt

    base, tl = served
    app = App(tl.model_dir, _exporter(encoding, base, tl.keys[PUBLIC]), "assistant-web")
    papp = App(tl.model_dir, _exporter(encoding, base, tl.keys[PRIVATE]), "assistant-internal")
    try:
        answer, trace_id, span_id = app.chat(f"Hello from {encoding}")
        panswer, _, pspan_id = papp.chat(f"Private hello from {encoding}")
        app.flush()
        papp.flush()
    finally:
        app.close()
        papp.close()
    [(index, entry)] = _generations(tl, span_id)
    assert entry["source"] == "otlp" and entry["deployment"] == PUBLIC and entry["model"] == tl.fingerprint
    assert entry["output"] == answer and entry["operation"] == "chat" and entry["span"]["trace_id"] == trace_id
    assert entry["tokens"]["output"] > 0 and entry["sampling"]["seed"] == 7 and entry["conversation"] == "conv-1"
    assert entry["provider"] == "transformers" and entry["finish_reasons"] == ["length"] and entry["service"] == "assistant-web"
    assert entry["captured"] == {"input": True, "output": True} and "activations" not in entry
    with Ledger.open(tl.data_dir) as lg:
        rc = capture.receipt(lg, index)
        report = verify_receipt(rc, lg.verifier_key)
        assert report.ok, report.to_dict()
        assert json.loads(rc.private["prompt"][1]) == {"messages": [{"role": "user", "content": f"Hello from {encoding}"}]}
        [(pindex, pentry)] = _generations(tl, pspan_id)
        assert pentry["deployment"] == PRIVATE and "output" not in pentry and pentry["output_commitment"].startswith("sha256:")
        prc = capture.receipt(lg, pindex)
        assert verify_receipt(prc, lg.verifier_key).ok
        opened = json.loads(prc.private["output"][1])
        assert opened["messages"][0]["content"] == panswer


def test_evaluation_events_become_findings_linked_to_the_generation(served):
    base, tl = served
    app = App(tl.model_dir, _exporter("protobuf", base, tl.keys[PUBLIC]), "assistant-web")
    try:
        _, _, span_id = app.chat("Is this relevant?", evaluation=("relevance", "irrelevant"))
        _, _, ok_span = app.chat("And this?", evaluation=("relevance", "relevant"))
        app.flush()
    finally:
        app.close()
    [(index, _)] = _generations(tl, span_id)
    [(ok_index, _)] = _generations(tl, ok_span)
    with Ledger.open(tl.data_dir) as lg:
        findings = {e["evidence"]["generation"]: e for _, e in lg.entries_of_type("finding")
                    if e["source"] == "application"}
    assert findings[index]["verdict"] == "alert" and findings[index]["check"] == "evaluation/relevance"
    assert findings[index]["model"] == tl.fingerprint and findings[index]["value"] == 0.2
    assert findings[ok_index]["verdict"] == "ok"
    # the explanation is committed, not published
    assert findings[index]["evidence"]["explanation"].startswith("sha256:")


def _span(trace: str, span: str, attrs: dict, name: str = "chat") -> dict:
    return {"traceId": trace, "spanId": span, "name": name, "kind": 3, "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000001000000000",
            "attributes": [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
                           for k, v in attrs.items()]}


def _request(spans: list[dict], service: str = "svc", extra_resource: dict | None = None) -> dict:
    res = [{"key": "service.name", "value": {"stringValue": service}}]
    res += [{"key": k, "value": {"stringValue": v}} for k, v in (extra_resource or {}).items()]
    return {"resourceSpans": [{"resource": {"attributes": res}, "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]}


CHAT = {"gen_ai.operation.name": "chat", "gen_ai.request.model": MODEL_NAME}


def _post(base, key, body, ctype="application/json", **headers):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    return httpx.post(base + "/v1/traces", content=data, timeout=30,
                      headers={"content-type": ctype, **({"authorization": f"Bearer {key}"} if key else {}), **headers})


def _size(tl) -> int:
    with Ledger.open(tl.data_dir) as lg:
        return lg.size


def _status(content: bytes) -> tuple[int, str]:
    """Decode a google.rpc.Status (fields 1 code and 2 message) by hand."""
    code, pos, message = 0, 0, ""
    while pos < len(content):
        tag = content[pos]
        pos += 1
        if tag == 0x08:
            shift = 0
            while True:
                b = content[pos]
                pos += 1
                code |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
        elif tag == 0x12:
            length, shift = 0, 0
            while True:
                b = content[pos]
                pos += 1
                length |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            message = content[pos:pos + length].decode()
            pos += length
        else:
            break
    return code, message


def test_malformed_protobuf_wrong_type_and_oversized(served):
    base, tl = served
    key = tl.keys[PUBLIC]
    before = _size(tl)
    r = _post(base, key, b"\x0a\xff\xff\xff\x0f\x01", "application/x-protobuf")
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/x-protobuf")
    code, message = _status(r.content)
    assert code == 3 and "not a valid protobuf" in message
    r = _post(base, key, b"{not json", "application/json")
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
    r = _post(base, key, _request([]), "text/plain")
    assert r.status_code == 415 and r.headers["content-type"] == "application/x-protobuf"
    assert "application/x-protobuf" in _status(r.content)[1]
    big = b"x" * (20 * 1024 * 1024 + 1)  # over the specification's recommended 20 MiB
    r = _post(base, key, big, "application/x-protobuf")  # declared Content-Length: refused before it is read
    assert r.status_code == 413 and r.headers["content-type"] == "application/x-protobuf"
    status = Status()
    status.ParseFromString(r.content)  # a google.rpc.Status, decoded by googleapis' own message
    assert status.code == 8 and "limit is 20971520" in status.message
    r = _post(base, key, big, "application/json")  # in the request's encoding
    assert r.status_code == 413 and r.headers["content-type"] == "application/json" and r.json()["code"] == 8

    def chunks():
        for _ in range(21):
            yield b"\x00" * (1024 * 1024)

    r = httpx.post(base + "/v1/traces", content=chunks(), timeout=30,  # streamed, no Content-Length
                   headers={"content-type": "application/x-protobuf", "authorization": f"Bearer {key}"})
    assert r.status_code == 413 and r.headers["content-type"] == "application/x-protobuf"
    status.ParseFromString(r.content)
    assert "over the limit" in status.message
    # a body of 5 MiB (over the old 4 MiB limit, within 20 MiB) is read: 512 spans with their content fit
    spans = [_span("b0" * 16, f"{k + 1:016x}", {**CHAT, "gen_ai.input.messages": "[]", "pad": "p" * 10_000})
             for k in range(512)]
    r = _post(base, key, _request(spans))
    assert r.status_code == 200 and len(r.request.content) > 5_000_000 and r.headers["x-glasslog-logged"] == "512"
    bomb = gzip.compress(b"\x00" * (40 * 1024 * 1024))
    r = _post(base, key, bomb, "application/x-protobuf", **{"content-encoding": "gzip"})
    assert r.status_code == 413 and "decompressed" in _status(r.content)[1]
    r = _post(base, key, b"\x1f\x8b garbage", "application/x-protobuf", **{"content-encoding": "gzip"})
    assert r.status_code == 400
    r = _post(base, key, _request([]), "application/json", **{"content-encoding": "br"})
    assert r.status_code == 415 and r.json()["code"] == 3 and "gzip" in r.json()["message"]
    assert _size(tl) == before + 512


def test_credentials(served):
    base, tl = served
    body = _request([_span("a" * 32, "b" * 16, CHAT)])
    r = _post(base, None, body)
    assert r.status_code == 401 and r.headers["content-type"] == "application/json" and r.json()["code"] == 16
    r = _post(base, None, b"", "application/x-protobuf")
    assert r.status_code == 401 and r.headers["content-type"] == "application/x-protobuf"
    assert _status(r.content) == (16, "send an operator API key: Authorization: Bearer glk_...")
    assert _post(base, "glk_000000000000_" + "A" * 43, body).status_code == 401
    key_id = tl.keys[PUBLIC].split("_")[1]  # a real key id with a wrong secret: said so, not "malformed"
    r = _post(base, f"glk_{key_id}_WRONGSECRET", body)
    assert r.status_code == 401 and r.json()["message"].startswith("unknown API key or wrong secret"), r.text
    assert "malformed credential" in _post(base, "token-of-another-kind", body).json()["message"]
    for role in ("developer", "researcher", "supervisor"):  # every role but the operator is refused, nothing logged
        r = _post(base, tl.keys[role], body)
        assert r.status_code == 403 and "operator" in r.json()["message"], role
    r = _post(base, "grt_0_" + "A" * 43, body)  # a receipt token is not a key
    assert r.status_code == 401
    # a key bound to a deployment is for its telemetry only: every other operator route refuses it
    bound = {"authorization": f"Bearer {tl.keys[PUBLIC]}"}
    r = httpx.get(base + "/v1/keys", headers=bound)
    assert r.status_code == 403 and "bound to deployment" in r.json()["detail"]
    unbound = {"authorization": f"Bearer {tl.keys['operator']}"}
    r = httpx.post(base + "/v1/keys", headers=unbound, json={"role": "operator", "name": "another app",
                                                             "deployments": [PRIVATE]})
    assert r.status_code == 201 and r.json()["deployments"] == [PRIVATE]
    r = httpx.post(base + "/v1/keys", headers=unbound, json={"role": "operator", "name": "x", "deployments": [PUBLIC, PRIVATE]})
    assert r.status_code == 422


def test_missing_attributes_unknown_operations_and_other_spans(served):
    base, tl = served
    before = _size(tl)
    spans = [_span("1" * 32, "1" * 16, {"gen_ai.operation.name": "chat"}),            # no model: rejected
             _span("1" * 32, "2" * 16, {"gen_ai.request.model": MODEL_NAME}),          # no operation: rejected
             _span("1" * 32, "3" * 16, {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "a"}),  # skipped
             _span("1" * 32, "4" * 16, {"gen_ai.operation.name": "summon_demons", "gen_ai.request.model": "m"}),  # skipped
             _span("1" * 32, "5" * 16, {"http.request.method": "GET"}, "GET /"),       # not GenAI: skipped
             _span("0" * 32, "6" * 16, CHAT)]                                           # no trace id: rejected
    r = _post(base, tl.keys[PUBLIC], _request(spans))
    assert r.status_code == 200
    ps = r.json()["partialSuccess"]
    assert int(ps["rejectedSpans"]) == 3
    msg = ps["errorMessage"]
    assert "gen_ai.request.model is missing" in msg and "gen_ai.operation.name is missing" in msg and "trace id" in msg
    assert "invoke_agent: 1" in msg and "summon_demons: 1" in msg and "non-GenAI spans: 1" in msg
    assert _size(tl) == before  # unknown operations are not logged, and not refused


def test_duplicate_span_ids_are_logged_once(served):
    base, tl = served
    spans = [_span("c" * 32, "d" * 16, CHAT), _span("c" * 32, "d" * 16, CHAT)]  # twice in one request
    r = _post(base, tl.keys[PUBLIC], _request(spans))
    assert r.status_code == 200 and r.headers["x-glasslog-logged"] == "1"
    size = _size(tl)
    proto = ExportTraceServiceRequest()
    from google.protobuf import json_format

    from glasslog.ingest.otlp import _fix_ids

    body = _request([_span("c" * 32, "d" * 16, CHAT)])
    _fix_ids(body)
    json_format.ParseDict(body, proto)
    r = _post(base, tl.keys[PUBLIC], proto.SerializeToString(), "application/x-protobuf")  # again, as protobuf
    assert r.status_code == 200 and r.headers["x-glasslog-logged"] == "0"
    resp = ExportTraceServiceResponse()
    resp.ParseFromString(r.content)
    assert resp.partial_success.rejected_spans == 0 and "already logged" in resp.partial_success.error_message
    assert _size(tl) == size
    # the same ids in another deployment are another span
    r = _post(base, tl.keys[PRIVATE], _request([_span("c" * 32, "d" * 16, CHAT)]))
    assert r.headers["x-glasslog-logged"] == "1"


def test_base64_ids_and_identity_from_the_resource(served):
    import base64

    base, tl = served
    trace, span = base64.b64encode(bytes(range(1, 17))).decode(), base64.b64encode(bytes(range(1, 9))).decode()
    body = _request([_span(trace, span, CHAT)], service=PRIVATE)
    r = _post(base, tl.keys["operator"], body)  # an unbound operator key: the deployment is service.name
    assert r.status_code == 200 and r.headers["x-glasslog-logged"] == "1"
    [(_, entry)] = _generations(tl, bytes(range(1, 9)).hex())
    assert entry["deployment"] == PRIVATE and entry["span"]["trace_id"] == bytes(range(1, 17)).hex()
    r = _post(base, tl.keys["operator"], _request([_span("e" * 32, "f" * 16, CHAT)], service="nobody.example/x"))
    assert int(r.json()["partialSuccess"]["rejectedSpans"]) == 1 and "not declared" in r.json()["partialSuccess"]["errorMessage"]
    r = _post(base, tl.keys[PUBLIC], _request([_span("e" * 32, "f" * 16, CHAT)],
                                              extra_resource={"glasslog.deployment": PRIVATE}))
    assert "bound to deployment" in r.json()["partialSuccess"]["errorMessage"]


def test_unregistered_model_is_logged_as_such_with_a_finding(served):
    base, tl = served
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-unregistered",
             "gen_ai.usage.prompt_tokens": 3, "gen_ai.usage.completion_tokens": 2,
             "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hi",
             "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "hello"}
    r = _post(base, tl.keys[PUBLIC], _request([_span("9" * 32, "8" * 16, attrs), _span("9" * 32, "7" * 16, attrs)]))
    assert r.headers["x-glasslog-logged"] == "2" and r.headers["x-glasslog-findings"] == "1"
    [(index, entry)] = _generations(tl, "8" * 16)
    assert "model" not in entry and entry["reported_model"] == {"request": "gpt-unregistered"}
    assert entry["provider"] == "openai" and entry["tokens"] == {"prompt": 3, "output": 2} and entry["output"] == "hello"
    with Ledger.open(tl.data_dir) as lg:
        [finding] = [e for _, e in lg.entries_of_type("finding") if e["check"] == "unregistered-model"
                     and e["evidence"]["reported_model"] == "gpt-unregistered"]
    assert finding["evidence"]["generation"] == index and finding["verdict"] == "alert"


def test_evaluation_log_records_link_to_their_span(served):
    base, tl = served
    _post(base, tl.keys[PUBLIC], _request([_span("4" * 32, "5" * 16, CHAT)]))
    [(index, _)] = _generations(tl, "5" * 16)
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.add(key="service.name").value.string_value = "svc"
    rec = rl.scope_logs.add().log_records.add()
    rec.event_name = "gen_ai.evaluation.result"
    rec.trace_id, rec.span_id = bytes.fromhex("4" * 32), bytes.fromhex("5" * 16)
    rec.time_unix_nano = 1700000002000000000
    for k, v in (("gen_ai.evaluation.name", "toxicity"), ("gen_ai.evaluation.score.label", "toxic")):
        rec.attributes.add(key=k).value.string_value = v
    other = rl.scope_logs[0].log_records.add()
    other.body.string_value = "an ordinary log line"
    body = req.SerializeToString()
    for attempt in range(2):  # the second delivery is a duplicate
        r = httpx.post(base + "/v1/logs", content=body, timeout=30,
                       headers={"content-type": "application/x-protobuf", "authorization": f"Bearer {tl.keys[PUBLIC]}"})
        assert r.status_code == 200
        resp = ExportLogsServiceResponse()
        resp.ParseFromString(r.content)
        assert resp.partial_success.rejected_log_records == 0
        assert r.headers["x-glasslog-findings"] == ("1" if attempt == 0 else "0")
    with Ledger.open(tl.data_dir) as lg:
        found = [e for _, e in lg.entries_of_type("finding") if e["check"] == "evaluation/toxicity"]
    assert len(found) == 1 and found[0]["evidence"]["generation"] == index and found[0]["verdict"] == "alert"


def test_gzip_json_body(served):
    base, tl = served
    body = gzip.compress(json.dumps(_request([_span("6" * 32, "6" * 16, CHAT)])).encode())
    r = _post(base, tl.keys[PUBLIC], body, "application/json", **{"content-encoding": "gzip"})
    assert r.status_code == 200 and r.headers["x-glasslog-logged"] == "1"


def _attr(k, v):
    if isinstance(v, bool):
        return {"key": k, "value": {"boolValue": v}}
    if isinstance(v, int):
        return {"key": k, "value": {"intValue": str(v)}}
    return {"key": k, "value": {"stringValue": v}}


def _embedding_span(trace: str, span: str, attrs: dict) -> dict:
    sp = _span(trace, span, {}, "embeddings")
    sp["attributes"] = [_attr(k, v) for k, v in attrs.items()]
    return sp


def test_embeddings_are_decisions_where_the_deployment_declares_it(served):
    from glasslog import capture
    from glasslog.verify.receipts import verify_receipt

    base, tl = served
    op = {"authorization": f"Bearer {tl.keys['operator']}"}
    r = httpx.post(base + "/v1/deployments", headers=op, json={"name": "acme.example/search", "visibility": "private",
                                                                "embeddings": "decision", "description": "retrieval"})
    assert r.status_code == 201 and r.json()["embeddings"] == "decision"
    r = httpx.post(base + "/v1/deployments", headers=op, json={"name": "acme.example/search", "visibility": "private"})
    assert r.status_code == 409 and "embeddings" in r.json()["detail"]  # fixed at declaration
    semconv = {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": MODEL_NAME, "gen_ai.provider.name": "local",
               "gen_ai.embeddings.dimension.count": 64, "gen_ai.usage.input_tokens": 5}
    openinference = {"openinference.span.kind": "EMBEDDING", "embedding.model_name": MODEL_NAME,
                     "embedding.embeddings.0.embedding.text": "first document",
                     "embedding.embeddings.1.embedding.text": "second document"}
    unregistered = {**semconv, "gen_ai.request.model": "text-embedding-unregistered"}
    spans = [_embedding_span("a1" * 16, "01" * 8, semconv), _embedding_span("a1" * 16, "02" * 8, openinference),
             _embedding_span("a1" * 16, "03" * 8, unregistered), _embedding_span("a1" * 16, "01" * 8, semconv)]
    before = _size(tl)
    r = _post(base, tl.keys["operator"], _request(spans, service="acme.example/search"))
    assert r.status_code == 200 and r.headers["x-glasslog-logged"] == "2"
    ps = r.json()["partialSuccess"]
    assert int(ps["rejectedSpans"]) == 1 and "text-embedding-unregistered" in ps["errorMessage"]
    assert "is not registered" in ps["errorMessage"] and "already logged" in ps["errorMessage"]
    with Ledger.open(tl.data_dir) as lg:
        assert lg.size == before + 2
        decisions = {e["span"]["span_id"]: (i, e) for i, e in lg.entries_of_type("decision") if e.get("source") == "otlp"}
        i1, d1 = decisions["01" * 8]
        assert d1["model"] == tl.fingerprint and d1["operation"] == "embeddings" and d1["deployment"] == "acme.example/search"
        assert d1["captured"] == {"input": False} and d1["tokens"] == {"input": 5} and "output" not in d1
        rc = capture.receipt(lg, i1)
        assert verify_receipt(rc, lg.verifier_key).ok
        assert json.loads(rc.private["output"][1]) == {"embeddings": None, "dimensions": 64}
        i2, d2 = decisions["02" * 8]
        assert d2["captured"] == {"input": True} and d2["reported_model"] == {"request": MODEL_NAME, "response": MODEL_NAME}
        rc2 = capture.receipt(lg, i2)
        assert verify_receipt(rc2, lg.verifier_key).ok
        assert json.loads(rc2.private["input"][1]) == {"texts": ["first document", "second document"]}
        assert json.loads(rc2.private["output"][1]) == {"embeddings": 2, "dimensions": None}
    # the same span again: logged once
    r = _post(base, tl.keys["operator"], _request(spans[:1], service="acme.example/search"))
    assert r.headers["x-glasslog-logged"] == "0" and "already logged" in r.json()["partialSuccess"]["errorMessage"]
    # a deployment that did not declare it: not logged, not refused, and the response says how to opt in
    size = _size(tl)
    r = _post(base, tl.keys[PUBLIC], _request([_embedding_span("a2" * 16, "04" * 8, semconv)]))
    ps = r.json()["partialSuccess"]
    assert r.status_code == 200 and r.headers["x-glasslog-logged"] == "0" and int(ps.get("rejectedSpans", 0)) == 0
    assert "embeddings: 1" in ps["errorMessage"] and "--embeddings decision" in ps["errorMessage"]
    assert _size(tl) == size


class ContentApp(App):
    """The small application with its content sent apart, as log records on /v1/logs (the GenAI conventions' events),
    exported by the SDK's OTLP/HTTP log exporter; the span carries no content."""

    def __init__(self, model_dir, base: str, key: str, service: str):
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.exporter = _exporter("protobuf", base, key)
        super().__init__(model_dir, self.exporter, service)
        self.exported = InMemorySpanExporter()  # what the SDK exported, to send again as a retrying exporter would
        self.provider.add_span_processor(SimpleSpanProcessor(self.exported))
        self.logs = LoggerProvider(resource=Resource.create({"service.name": service}))
        self.logs.add_log_record_processor(BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=base + "/v1/logs", headers={"Authorization": f"Bearer {key}"})))
        self.logger = self.logs.get_logger("test-app")

    def chat(self, text: str, style: str, max_new_tokens: int = 8):
        """``style``: ``events`` (gen_ai.user.message + gen_ai.choice) or ``details`` (one operation details event)."""
        import torch

        messages = [{"role": "user", "content": text}]
        with self.tracer.start_as_current_span(f"chat {MODEL_NAME}") as span:
            ids = self.tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            with torch.inference_mode():
                out = self.lm.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
            answer = self.tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
            attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "transformers",
                     "gen_ai.request.model": MODEL_NAME, "gen_ai.response.finish_reasons": ["length"]}
            span.set_attributes(attrs)
            span.set_attributes({"gen_ai.usage.input_tokens": int(ids["input_ids"].shape[1]),  # on the span only
                                 "gen_ai.usage.output_tokens": int(out.shape[1] - ids["input_ids"].shape[1]),
                                 "gen_ai.response.id": f"resp-{text[:4]}"})
            if style == "events":
                self.logger.emit(event_name="gen_ai.user.message", body={"content": text},
                                 attributes={"gen_ai.provider.name": "transformers"})
                self.logger.emit(event_name="gen_ai.choice", attributes={"gen_ai.provider.name": "transformers"},
                                 body={"index": 0, "finish_reason": "length",
                                       "message": {"role": "assistant", "content": answer}})
            else:
                self.logger.emit(event_name="gen_ai.client.inference.operation.details", attributes={
                    **attrs, "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}]),
                    "gen_ai.output.messages": json.dumps([{"role": "assistant", "finish_reason": "length",
                                                           "parts": [{"type": "text", "content": answer}]}])})
            ctx = span.get_span_context()
        return answer, f"{ctx.span_id:016x}"

    def flush_logs(self):
        assert self.logs.force_flush(30_000)

    def close(self):
        super().close()
        self.logs.shutdown()


def _entries_of_span(tl, span_id: str) -> list[tuple[int, dict]]:
    with Ledger.open(tl.data_dir) as lg:
        return [(i, e) for i, e in lg.entries_of_type("generation") if e.get("span", {}).get("span_id") == span_id]


def _opened(tl, index: int) -> dict:
    from glasslog import capture
    from glasslog.verify.receipts import verify_receipt

    with Ledger.open(tl.data_dir) as lg:
        rc = capture.receipt(lg, index)
        assert verify_receipt(rc, lg.verifier_key).ok
        return {kind: json.loads(value) for kind, (_, value) in rc.private.items()}


def test_content_log_records_attach_to_their_generation_whichever_comes_first(served):
    base, tl = served
    app = ContentApp(tl.model_dir, base, tl.keys[PUBLIC], "assistant-web")
    try:
        # 1. message events (which name no model) before the span: a content part, then the span's entry naming it
        answer, span1 = app.chat("Logs first, please", "events")
        app.flush_logs()
        [(c1, part)] = _entries_of_span(tl, span1)
        assert part["part"] == "content" and "generation" not in part and "model" not in part
        assert part["captured"] == {"input": True, "output": True} and part["output"] == answer
        assert _opened(tl, c1)["prompt"] == {"messages": [{"role": "user", "content": "Logs first, please"}]}
        app.flush()
        [(_, part_again), (g1, op)] = _entries_of_span(tl, span1)
        assert part_again == part and op["content"] == c1 and "part" not in op
        assert op["model"] == tl.fingerprint and op["captured"] == {"input": False, "output": False}
        # 2. the span first, then the operation details event: the details' content, naming the span's entry
        answer2, span2 = app.chat("Span first, please", "details")
        app.flush()
        app.flush_logs()
        [(g2, op2), (c2, part2)] = _entries_of_span(tl, span2)
        assert op2["captured"] == {"input": False, "output": False} and "content" not in op2
        assert part2["part"] == "content" and part2["generation"] == g2 and part2["model"] == tl.fingerprint
        assert part2["operation"] == "chat" and part2["reported_model"] == {"request": MODEL_NAME}
        assert part2["output"] == answer2 and _opened(tl, c2)["prompt"]["messages"][0]["content"] == "Span first, please"
        # 3. the details event first (the SDK emits it inside the span): it is the operation's entry (content
        # included); the span adds what the details record lacked, as a span part naming that entry, nothing twice
        size = _size(tl)
        _, span3 = app.chat("Details first, please", "details")
        app.flush_logs()
        app.flush()
        [(g3, op3), (s3, part3)] = _entries_of_span(tl, span3)
        assert op3["captured"] == {"input": True, "output": True} and _size(tl) == size + 2
        assert "tokens" not in op3 and "response_id" not in op3 and op3["span"]["start"] == op3["span"]["end"]
        assert part3["part"] == "span" and part3["generation"] == g3 and part3["model"] == tl.fingerprint
        assert part3["captured"] == {"input": False, "output": False} and part3["response_id"] == "resp-Deta"
        assert part3["tokens"]["prompt"] > 0 and part3["tokens"]["output"] == 8
        assert part3["span"]["start"] < part3["span"]["end"] and "finish_reasons" not in part3  # the entry has them
        # the SDK's exporter sends the same span again (a retry): logged once
        [sdk_span] = [s for s in app.exported.get_finished_spans() if f"{s.context.span_id:016x}" == span3]
        from opentelemetry.sdk.trace.export import SpanExportResult
        assert app.exporter.export([sdk_span]) == SpanExportResult.SUCCESS
        assert _size(tl) == size + 2
    finally:
        app.close()


def _log_request(records: list[tuple[str, bytes, bytes, dict]], service: str = "svc") -> bytes:
    """An ExportLogsServiceRequest of (event name, trace id, span id, body) records, built with opentelemetry-proto."""
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.add(key="service.name").value.string_value = service
    sl = rl.scope_logs.add()
    for k, (name, trace, span, body) in enumerate(records):
        rec = sl.log_records.add()
        rec.event_name, rec.trace_id, rec.span_id = name, trace, span
        rec.time_unix_nano = 1700000000000000000 + k
        for key, value in body.items():
            if isinstance(value, dict):
                kv = rec.body.kvlist_value.values.add(key=key)
                for k2, v2 in value.items():
                    kv.value.kvlist_value.values.add(key=k2).value.string_value = v2
            elif isinstance(value, int):
                rec.body.kvlist_value.values.add(key=key).value.int_value = value
            else:
                rec.body.kvlist_value.values.add(key=key).value.string_value = value
    return req.SerializeToString()


def _post_logs(base, key, body: bytes) -> httpx.Response:
    return httpx.post(base + "/v1/logs", content=body, timeout=30,
                      headers={"content-type": "application/x-protobuf", "authorization": f"Bearer {key}"})


def test_content_split_over_exports_is_logged_once_and_only_what_is_missing(served):
    base, tl = served
    key = tl.keys[PRIVATE]
    trace, span = bytes.fromhex("c1" * 16), bytes.fromhex("c2" * 8)
    with_input = {**CHAT, "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}])}
    r = _post(base, key, _request([_span(trace.hex(), span.hex(), with_input)]))  # the span: input captured, no output
    assert r.headers["x-glasslog-logged"] == "1"
    [(g, op)] = _entries_of_span(tl, span.hex())
    user = ("gen_ai.user.message", trace, span, {"content": "hi"})
    choice = ("gen_ai.choice", trace, span, {"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": "hello there"}})
    r = _post_logs(base, key, _log_request([user]))  # the input again: the entry holds it already
    assert r.status_code == 200 and r.headers["x-glasslog-logged"] == "0"
    assert "already logged" in ExportLogsServiceResponse.FromString(r.content).partial_success.error_message
    size = _size(tl)
    body = _log_request([user, choice])
    r = _post_logs(base, key, body)  # the output, in a later export: a content part with the output only
    assert r.status_code == 200 and r.headers["x-glasslog-logged"] == "1" and _size(tl) == size + 1
    [(_, _), (c, part)] = _entries_of_span(tl, span.hex())
    assert part["generation"] == g and part["captured"] == {"input": False, "output": True}
    assert "output" not in part and part["output_commitment"].startswith("sha256:")  # a private deployment
    assert _opened(tl, c)["output"] == {"messages": [{"role": "assistant", "content": "hello there",
                                                      "finish_reason": "stop"}]}
    r = _post_logs(base, key, body)  # the same export again: nothing new
    assert r.headers["x-glasslog-logged"] == "0" and _size(tl) == size + 1
    # content without a valid span id is refused (it could never be joined to its generation)
    r = _post_logs(base, key, _log_request([("gen_ai.user.message", trace, bytes(8), {"content": "orphan"})]))
    resp = ExportLogsServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_log_records == 1 and "span id" in resp.partial_success.error_message


def test_the_readme_environment_lines_point_an_sdk_exporter_here(served):
    """The README's two lines (endpoint and protocol, headers with %20), and nothing else: an application's default
    OTLP/HTTP span and log exporters send here, with the key."""
    import os
    import subprocess
    import sys

    base, tl = served
    app = """
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
res = Resource.create({"service.name": "readme-app"})
tracer = TracerProvider(resource=res)
tracer.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
logs = LoggerProvider(resource=res)
logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter()))
with tracer.get_tracer("app").start_as_current_span("chat m") as span:
    span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "%s"})
    logs.get_logger("app").emit(event_name="gen_ai.user.message", body={"content": "configured by env"})
    print(f"{span.get_span_context().span_id:016x}")
""" % MODEL_NAME
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{tl.keys[PUBLIC]}"}
    done = subprocess.run([sys.executable, "-c", app], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    span_id = done.stdout.strip()
    entries = _entries_of_span(tl, span_id)
    assert [e.get("part") for _, e in entries] == ["content", None] and entries[1][1]["service"] == "readme-app"
    assert _opened(tl, entries[0][0])["prompt"] == {"messages": [{"role": "user", "content": "configured by env"}]}


def test_content_in_three_forms_is_logged_once(served):
    """Message events, then the details record, then the span, all carrying the same input and output: one content
    part (the events') and the operation's entry naming it, without the content again; resending any of them adds
    nothing."""
    base, tl = served
    key = tl.keys[PUBLIC]
    trace, span = bytes.fromhex("d1" * 16), bytes.fromhex("d2" * 8)
    events = _log_request([("gen_ai.user.message", trace, span, {"content": "once"}),
                           ("gen_ai.choice", trace, span, {"index": 0, "message": {"role": "assistant", "content": "only"}})])
    r = _post_logs(base, key, events)
    assert r.headers["x-glasslog-logged"] == "1"
    details = ExportLogsServiceRequest()
    rec = details.resource_logs.add().scope_logs.add().log_records.add()
    rec.event_name, rec.trace_id, rec.span_id = "gen_ai.client.inference.operation.details", trace, span
    messages = {"gen_ai.operation.name": "chat", "gen_ai.request.model": MODEL_NAME,
                "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "once"}]}]),
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "only"}]}])}
    for k, v in messages.items():
        rec.attributes.add(key=k).value.string_value = v
    r = _post_logs(base, key, details.SerializeToString())  # the operation, first: its entry, without the content again
    assert r.headers["x-glasslog-logged"] == "1"
    [(c, part), (g, op)] = _entries_of_span(tl, span.hex())
    assert part["part"] == "content" and part["output"] == "only" and op["content"] == c
    assert op["captured"] == {"input": False, "output": False} and op["model"] == tl.fingerprint
    size = _size(tl)
    r = _post(base, key, _request([_span(trace.hex(), span.hex(), messages)]))  # the span, with the content too
    assert r.headers["x-glasslog-logged"] == "1"  # its times only: a span part, without the content again
    [_, _, (_, sp)] = _entries_of_span(tl, span.hex())
    assert sp["part"] == "span" and sp["generation"] == g and sp["captured"] == {"input": False, "output": False}
    assert sp["span"]["start"] == "2023-11-14T22:13:20.000000Z" and sp["span"]["end"] == "2023-11-14T22:13:21.000000Z"
    assert _post(base, key, _request([_span(trace.hex(), span.hex(), messages)])).headers["x-glasslog-logged"] == "0"
    for body in (events, details.SerializeToString()):
        assert _post_logs(base, key, body).headers["x-glasslog-logged"] == "0"
    assert _size(tl) == size + 1


def test_message_events_in_two_exports_are_both_linked_from_the_span(served):
    """gen_ai.user.message and gen_ai.choice in two exports before their span: two content parts, both named by the
    span's entry (``content``, a list), each opened by its own receipt."""
    base, tl = served
    key = tl.keys[PUBLIC]
    trace, span = bytes.fromhex("e1" * 16), bytes.fromhex("e2" * 8)
    assert _post_logs(base, key, _log_request([("gen_ai.user.message", trace, span, {"content": "in"})])) \
        .headers["x-glasslog-logged"] == "1"
    assert _post_logs(base, key, _log_request([("gen_ai.choice", trace, span, {
        "index": 0, "message": {"role": "assistant", "content": "out"}})])).headers["x-glasslog-logged"] == "1"
    with_input = {**CHAT, "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "in"}]}])}
    r = _post(base, key, _request([_span(trace.hex(), span.hex(), with_input)]))  # its input is in a part already
    assert r.headers["x-glasslog-logged"] == "1"
    [(c1, p1), (c2, p2), (g, op)] = _entries_of_span(tl, span.hex())
    assert op["content"] == [c1, c2] and p1["captured"] == {"input": True, "output": False}
    assert op["captured"] == {"input": False, "output": False}  # not logged twice
    assert p2["output"] == "out" and _opened(tl, c1)["prompt"] == {"messages": [{"role": "user", "content": "in"}]}
    r = _post(base, key, _request([_span(trace.hex(), span.hex(), with_input)]))  # resent: a duplicate, no conflict
    assert r.headers["x-glasslog-logged"] == "0" and "rejectedSpans" not in r.json().get("partialSuccess", {})


def test_a_span_id_resent_with_other_attributes_is_a_conflict(served):
    base, tl = served
    key = tl.keys[PUBLIC]
    trace, span = "f1" * 16, "f2" * 8
    first = {**CHAT, "gen_ai.usage.output_tokens": 3}
    assert _post(base, key, _request([_span(trace, span, first)])).headers["x-glasslog-logged"] == "1"
    size = _size(tl)
    assert _post(base, key, _request([_span(trace, span, first)])).headers["x-glasslog-logged"] == "0"  # a retry
    r = _post(base, key, _request([_span(trace, span, {**CHAT, "gen_ai.usage.output_tokens": 4})]))
    ps = r.json()["partialSuccess"]
    assert r.headers["x-glasslog-logged"] == "0" and int(ps["rejectedSpans"]) == 1 and _size(tl) == size
    assert f"span {span}: conflict" in ps["errorMessage"] and "not overwritten" in ps["errorMessage"]
    [(_, e)] = _entries_of_span(tl, span)
    assert e["tokens"] == {"prompt": None, "output": 3}
    # two different spans of one id in one request: the first is logged, the second is a conflict
    r = _post(base, key, _request([_span(trace, "f3" * 8, first), _span(trace, "f3" * 8, CHAT)]))
    assert r.headers["x-glasslog-logged"] == "1" and int(r.json()["partialSuccess"]["rejectedSpans"]) == 1


def test_bad_token_counts_reject_the_span_naming_the_attribute(served):
    base, tl = served
    size = _size(tl)
    spans = [_span("a7" * 16, "a8" * 8, {**CHAT, "gen_ai.usage.output_tokens": "lots"}),
             _span("a7" * 16, "a9" * 8, {**CHAT, "gen_ai.usage.input_tokens": -5})]
    r = _post(base, tl.keys[PUBLIC], _request(spans))
    ps = r.json()["partialSuccess"]
    assert r.headers["x-glasslog-logged"] == "0" and int(ps["rejectedSpans"]) == 2 and _size(tl) == size
    assert "gen_ai.usage.output_tokens must be a non-negative integer token count, got 'lots'" in ps["errorMessage"]
    assert "gen_ai.usage.input_tokens must be a non-negative integer token count, got '-5'" in ps["errorMessage"]


def test_verify_replay_counts_self_reported_entries_as_not_checked(served):
    """A log holding only OTLP-reported generations and embeddings decisions: ``glasslog verify replay`` fails
    nothing (exit 0) and says the self-reported entries were not checked; no wrap_encoder_classifier advice."""
    import subprocess

    base, tl = served
    assert _post(base, tl.keys[PUBLIC], _request([_span("b1" * 16, "b2" * 8, CHAT)])).headers["x-glasslog-logged"] == "1"
    done = subprocess.run([*glasslog_command(), "verify", "replay", "--data-dir", str(tl.data_dir)], capture_output=True,
                          text=True, timeout=300, env={**__import__("os").environ, "COLUMNS": "400"})
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert "FAILED" not in text and "wrap_encoder_classifier" not in text
    with Ledger.open(tl.data_dir) as lg:
        gens = sum(1 for _ in lg.entries_of_type("generation"))
    assert f"{gens} self-reported (OTLP or gateway" in text and "checked nothing" in text
    with Ledger.open(tl.data_dir) as lg:  # the embeddings test (earlier in this module) logged decisions
        decisions = sum(1 for _, d in lg.entries_of_type("decision") if d.get("source") == "otlp")
    assert not decisions or f"{decisions} self-reported (OTLP embeddings" in text  # run alone (-k): none


def test_an_otlp_application_reads_its_receipts_with_an_unbound_operator_key(served):
    """The key an application sends with (bound to its deployment) only sends telemetry: receipts are read with an
    unbound operator key at GET /v1/generations/{index}/receipt (as the README says); they verify and open the
    prompt."""
    from glasslog.ledger.receipt import Receipt
    from glasslog.verify.receipts import verify_receipt

    base, tl = served
    spans = [_span("b3" * 16, "b4" * 8, {**CHAT, "gen_ai.input.messages": json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "receipt please"}]}])})]
    for dep in (PUBLIC, PRIVATE):
        r = _post(base, tl.keys[dep], _request(spans))
        assert r.headers["x-glasslog-logged"] == "1"
        [(index, _)] = [(i, e) for i, e in _entries_of_span(tl, "b4" * 8) if e["deployment"] == dep]
        url = f"{base}/v1/generations/{index}/receipt"
        bound = httpx.get(url, timeout=30, headers={"authorization": f"Bearer {tl.keys[dep]}"})
        assert bound.status_code == 403 and "use an unbound operator key" in bound.json()["detail"]
        got = httpx.get(url, timeout=30, headers={"authorization": f"Bearer {tl.keys['operator']}"})
        assert got.status_code == 200, got.text
        rc = Receipt.from_dict(got.json())
        with Ledger.open(tl.data_dir) as lg:
            assert verify_receipt(rc, lg.verifier_key).ok
        assert json.loads(rc.private["prompt"][1]) == {"messages": [{"role": "user", "content": "receipt please"}]}
