"""GenAI span mapping (glasslog.ingest.genai) across conventions, and OTLP body decoding (glasslog.ingest.otlp)."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from glasslog.ingest import genai
from glasslog.ingest.otlp import OtlpError, decode_request, iter_spans


def test_current_conventions():
    rec = genai.map_span({
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "m",
        "gen_ai.response.model": "m-2025", "gen_ai.response.id": "r1", "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 7, "gen_ai.request.temperature": 0.5,
        "gen_ai.request.seed": 3, "gen_ai.request.max_tokens": 10, "gen_ai.conversation.id": "c",
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "finish_reason": "stop", "parts": [
            {"type": "text", "content": "Hel"}, {"type": "text", "content": "lo"}]}])}, [], {})
    assert (rec.provider, rec.request_model, rec.response_model, rec.response_id) == ("openai", "m", "m-2025", "r1")
    assert (rec.input_tokens, rec.output_tokens, rec.conversation) == (5, 7, "c")
    assert rec.sampling == {"temperature": 0.5, "seed": 3, "max_tokens": 10}
    assert rec.prompt == {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
    assert rec.output == [{"role": "assistant", "content": "Hello", "finish_reason": "stop"}]


def test_v136_and_openllmetry_names():
    events = [("gen_ai.system.message", {"content": "sys"}), ("gen_ai.user.message", {"content": "q"}),
              ("gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": json.dumps({"content": "a"})}),
              ("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "tox", "gen_ai.evaluation.score.label": "toxic"})]
    rec = genai.map_span({"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "m",
                          "gen_ai.usage.prompt_tokens": 3, "gen_ai.usage.completion_tokens": 4}, events, {})
    assert rec.provider == "openai" and (rec.input_tokens, rec.output_tokens) == (3, 4)
    assert rec.prompt == {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}]}
    assert rec.output == [{"role": "assistant", "content": "a", "finish_reason": "stop"}] and rec.finish_reasons == ["stop"]
    assert [(e.name, e.label) for e in rec.evaluations] == [("tox", "toxic")]
    rec = genai.map_span({"llm.request.type": "completion", "gen_ai.request.model": "m",
                          "gen_ai.prompt.0.content": "Once", "gen_ai.completion.0.content": " upon"}, [], {})
    assert rec.operation == "text_completion" and rec.prompt == {"text": "Once"} and rec.output[0]["content"] == " upon"


def test_openinference():
    rec = genai.map_span({
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.provider": "openai",
        "llm.invocation_parameters": json.dumps({"temperature": 0.1, "max_completion_tokens": 9}),
        "llm.token_count.prompt": 11, "llm.token_count.completion": 2, "session.id": "s1",
        "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "Q?",
        "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "A.",
        "evaluations.0.evaluation.name": "correctness", "evaluations.0.evaluation.label": "incorrect",
        "evaluations.0.evaluation.score": 0}, [], {})
    assert rec.convention == "openinference" and rec.request_model == "gpt-4o" and rec.conversation == "s1"
    assert rec.sampling == {"temperature": 0.1, "max_tokens": 9} and (rec.input_tokens, rec.output_tokens) == (11, 2)
    assert rec.prompt == {"messages": [{"role": "user", "content": "Q?"}]} and rec.output[0]["content"] == "A."
    assert rec.evaluations[0].label == "incorrect" and rec.evaluations[0].score == 0
    rec = genai.map_span({"openinference.span.kind": "LLM", "llm.model_name": "m", "input.value": "plain question",
                          "output.value": "plain answer"}, [], {})
    assert rec.prompt == {"messages": [{"role": "user", "content": "plain question"}]}
    assert rec.output == [{"role": "assistant", "content": "plain answer"}]
    with pytest.raises(genai.NotGenAI):
        genai.map_span({"openinference.span.kind": "CHAIN"}, [], {})


def test_not_captured_and_not_generations():
    rec = genai.map_span({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}, [], {})
    assert rec.prompt is None and rec.output is None
    for op in ("embeddings", "invoke_agent", "execute_tool", "made_up"):
        with pytest.raises(genai.NotGenAI) as exc:
            genai.map_span({"gen_ai.operation.name": op, "gen_ai.request.model": "m"}, [], {})
        assert exc.value.operation == op
    with pytest.raises(genai.NotGenAI):
        genai.map_span({"http.request.method": "GET"}, [], {})
    with pytest.raises(genai.MissingAttribute):
        genai.map_span({"gen_ai.operation.name": "chat"}, [], {})
    with pytest.raises(genai.MissingAttribute):
        genai.map_span({"gen_ai.request.model": "m"}, [], {})
    with pytest.raises(genai.MissingAttribute):
        genai.map_span({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.input.messages": "{}"}, [], {})


def _json_body(trace: str, span: str) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": trace, "spanId": span, "name": "x"}]}]}]}).encode()


def test_ids_hex_or_base64_and_gzip():
    t, s = bytes(range(16)), bytes(range(8))
    for trace, span in ((t.hex(), s.hex()), (base64.b64encode(t).decode(), base64.b64encode(s).decode())):
        msg, fmt = decode_request(_json_body(trace, span), "application/json; charset=utf-8", None, "traces")
        [sv] = list(iter_spans(msg))
        assert (sv.trace_id, sv.span_id) == (t, s) and fmt == "application/json"
    msg, _ = decode_request(gzip.compress(_json_body(t.hex(), s.hex())), "application/json", "gzip", "traces")
    assert list(iter_spans(msg))[0].trace_id == t
    for body, ctype, enc, status in ((b"\xff", "application/x-protobuf", None, 400), (b"[1]", "application/json", None, 400),
                                     (b"{}", "text/plain", None, 415), (b"{}", "application/json", "zstd", 415),
                                     (b"x" * (20 * 1024 * 1024 + 1), "application/json", None, 413)):
        with pytest.raises(OtlpError) as exc:
            decode_request(body, ctype, enc, "traces")
        assert exc.value.status == status


def test_ids_that_are_neither_hex_nor_base64_of_the_right_size_are_not_guessed():
    """A fresh tester's "xyz" / "123" ids came out as the bytes a base64 decoder made of them; now they are no ids, so
    the span is refused for it (31 hex digits too); hex and base64 of the right size still read."""
    import json

    from glasslog.ingest.otlp import decode_request, iter_spans

    def ids(trace, span):
        body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": trace, "spanId": span}]}]}]})
        sv = list(iter_spans(decode_request(body.encode(), "application/json", None, "traces")[0]))[0]
        return sv.trace_id.hex(), sv.span_id.hex()

    assert ids("xyz", "123") == ("", "")
    assert ids("5b8efff798038103d269b633813fc60", "eee19b7ec3c1b17") == ("", "")
    assert ids("5B8EFFF798038103D269B633813FC60C", "eee19b7ec3c1b174") == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
    assert ids("AQIDBAUGBwgJCgsMDQ4PEA==", "AQIDBAUGBwg=") == (bytes(range(1, 17)).hex(), bytes(range(1, 9)).hex())


def test_the_documented_generative_model_card_is_valid_and_its_rules_are_named():
    """docs/generations.md's minimal card for a causal LM parses as a ModelCard; a perplexity claimed as a metric
    is refused naming the field (the doc says it goes in ``extra``)."""
    import re
    from pathlib import Path

    from glasslog.registry.card import CardError, ModelCard

    doc = (Path(__file__).parent.parent / "docs" / "generations.md").read_text(encoding="utf-8")
    section = doc[doc.index("## A model card for a generative model"):]
    block = re.search(r"```json\n(.*?)```", section, re.DOTALL).group(1)
    card = ModelCard.from_dict(json.loads(block))
    assert card.feature_names == ["prompt"] and card.claimed.metrics == {"exact_match": 0.62, "refusal_rate": 0.03}
    bad = json.loads(block)
    bad["claimed"]["metrics"]["perplexity"] = 6.1
    with pytest.raises(CardError) as err:
        ModelCard.from_dict(bad)
    assert "claimed.metrics.perplexity" in str(err.value) and "fraction" in str(err.value)
