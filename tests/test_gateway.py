"""``glasslog gateway`` end to end: the official ``openai`` client calls the gateway, which forwards to a real
third-party OpenAI-compatible server on loopback (``transformers serve``, which ships with transformers, on the test
causal LM; it needs ``accelerate``) and logs every completion. Streaming and not, receipts, the kill switch, an
upstream that is down, one that answers malformed JSON, a client that disconnects mid-stream."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from glasslog.ledger import Ledger

from .ingest_support import MODEL_NAME, build_test_model, free_port, glasslog_command, make_log, need_llm_stack, process

DEPLOYMENT = "acme.example/chat"


def _transformers_cli() -> list[str]:
    script = Path(sys.executable).parent / "transformers"
    if script.is_file():
        return [str(script)]
    found = shutil.which("transformers")
    if not found:
        pytest.skip("the transformers CLI (transformers serve) is not installed")
    return [found]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    need_llm_stack()
    return build_test_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def upstream(model_dir, tmp_path_factory):
    """``transformers serve`` pinned to the test model, offline, on CPU."""
    if importlib.util.find_spec("accelerate") is None:
        pytest.skip("transformers serve needs accelerate (pip install accelerate, beside the installed torch)")
    log = tmp_path_factory.mktemp("upstream") / "transformers-serve.log"
    with process([*_transformers_cli(), "serve", str(model_dir), "--host", "127.0.0.1", "--device", "cpu",
                  "--log-level", "warning"], "/v1/models", log, timeout=240) as base:
        yield base


@pytest.fixture(scope="module")
def gateway(upstream, model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway")
    tl = make_log(root / "log", model_dir, {DEPLOYMENT: "public-service"})
    # transformers serve names the model by its directory; the alias maps that name to the registered fingerprint
    args = [*glasslog_command(), "gateway", "--data-dir", str(tl.data_dir), "--upstream", upstream, "--deployment",
            DEPLOYMENT, "--model", f"{model_dir}={tl.fingerprint}"]
    with process(args, "/v1/models", root / "gateway.log") as base:
        yield base, tl


def _client(base: str):
    from openai import OpenAI

    return OpenAI(base_url=base + "/v1", api_key="sk-upstream-key", max_retries=0, timeout=120)


def _entry(tl, index: int) -> dict:
    with Ledger.open(tl.data_dir) as lg:
        return json.loads(lg.entry(index))


def _receipt(base: str, token: str) -> dict:
    r = httpx.get(base + "/v1/receipt", headers={"authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_chat_completion_is_forwarded_logged_and_receipted(gateway, upstream, model_dir):
    from glasslog.ledger.receipt import Receipt
    from glasslog.verify.receipts import verify_receipt

    base, tl = gateway
    raw = _client(base).chat.completions.with_raw_response.create(
        model=str(model_dir), messages=[{"role": "user", "content": "Hello there"}], max_tokens=8, temperature=0, seed=5)
    completion = raw.parse()
    direct = httpx.post(upstream + "/v1/chat/completions", timeout=120, json={
        "model": str(model_dir), "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 8,
        "temperature": 0, "seed": 5}).json()
    assert completion.choices[0].message.content == direct["choices"][0]["message"]["content"]  # forwarded unchanged
    index = int(raw.headers["x-glasslog-index"])
    token = raw.headers["x-glasslog-receipt-token"]
    entry = _entry(tl, index)
    assert entry["source"] == "gateway" and entry["model"] == tl.fingerprint and entry["deployment"] == DEPLOYMENT
    assert entry["output"] == completion.choices[0].message.content and entry["response_id"] == completion.id
    assert entry["tokens"] == {"prompt": completion.usage.prompt_tokens, "output": completion.usage.completion_tokens}
    assert entry["sampling"] == {"max_tokens": 8, "temperature": 0, "seed": 5}
    got = _receipt(base, token)
    rc = Receipt.from_dict(got["receipt"])
    assert got["index"] == index and verify_receipt(rc, got["verifier_key"]).ok
    assert json.loads(rc.private["prompt"][1]) == {"messages": [{"role": "user", "content": "Hello there"}]}


def test_a_gateway_receipt_token_opens_its_generation_at_the_servers_receipt_endpoint(gateway, model_dir, tmp_path):
    """The receipt token the gateway hands back works at ``glasslog serve``'s GET /v1/receipt too (README): the
    generation as its subject sees it and its receipt, which verifies."""
    from glasslog.ledger.receipt import Receipt
    from glasslog.verify.receipts import verify_receipt

    base, tl = gateway
    raw = _client(base).chat.completions.with_raw_response.create(
        model=str(model_dir), messages=[{"role": "user", "content": "Receipt at the server"}], max_tokens=4)
    index, token = int(raw.headers["x-glasslog-index"]), raw.headers["x-glasslog-receipt-token"]
    with process([*glasslog_command(), "serve", "--data-dir", str(tl.data_dir)], "/checkpoint",
                 tmp_path / "serve.log") as server:
        r = httpx.get(server + "/v1/receipt", headers={"authorization": f"Bearer {token}"}, timeout=30)
        assert r.status_code == 200, r.text
        got = r.json()
        key = httpx.get(server + "/checkpoint", timeout=30).text
    assert "decision" not in got and got["generation"]["index"] == index
    assert got["generation"]["output"] == raw.parse().choices[0].message.content
    assert got["generation"]["prompt_value"] == {"messages": [{"role": "user", "content": "Receipt at the server"}]}
    rc = Receipt.from_dict(got["receipt"])
    with Ledger.open(tl.data_dir) as lg:
        assert verify_receipt(rc, lg.verifier_key).ok and key.startswith(lg.origin)


def test_completions_and_streams(gateway, model_dir):
    base, tl = gateway
    client = _client(base)
    raw = client.completions.with_raw_response.create(model=str(model_dir), prompt="Once upon", max_tokens=5)
    entry = _entry(tl, int(raw.headers["x-glasslog-index"]))
    assert entry["operation"] == "text_completion" and entry["output"] == raw.parse().choices[0].text
    with client.chat.completions.with_streaming_response.create(
            model=str(model_dir), messages=[{"role": "user", "content": "Stream, please"}], max_tokens=6, stream=True,
            stream_options={"include_usage": True}) as resp:
        lines = list(resp.iter_lines())
    chunks = [json.loads(line[5:]) for line in lines if line.startswith("data:") and line[5:].strip() != "[DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    [comment] = [line for line in lines if line.startswith(": glasslog ")]
    info = json.loads(comment[len(": glasslog "):])
    entry = _entry(tl, info["index"])
    assert entry["output"] == text and "incomplete" not in entry and entry["tokens"]["output"] == 6
    assert _receipt(base, info["receipt_token"])["index"] == info["index"]
    # the openai client's own stream iterator skips the receipt comment
    stream = client.completions.create(model=str(model_dir), prompt="Once upon", max_tokens=4, stream=True)
    assert "".join(c.choices[0].text for c in stream)


def test_client_disconnecting_mid_stream_still_gets_logged(gateway, model_dir):
    base, tl = gateway
    with Ledger.open(tl.data_dir) as lg:
        before = lg.size
    with httpx.stream("POST", base + "/v1/chat/completions", timeout=120, json={
            "model": str(model_dir), "messages": [{"role": "user", "content": "A long answer please"}],
            "max_tokens": 400, "stream": True}) as r:
        for _ in zip(range(3), r.iter_lines()):
            pass  # then leave
    deadline = time.monotonic() + 60
    entry = None
    while time.monotonic() < deadline and entry is None:
        with Ledger.open(tl.data_dir) as lg:
            found = [e for i, e in lg.entries_of_type("generation", before)]
        entry = found[0] if found else None
        time.sleep(0.2)
    assert entry is not None, "the disconnected stream's generation was not logged"
    assert entry.get("incomplete", "client-disconnected") == "client-disconnected"


def test_suspended_model_is_refused_and_nothing_forwarded(gateway, model_dir, tmp_path):
    from openai import NotFoundError, PermissionDeniedError

    from glasslog.registry import Registry

    base, tl = gateway
    with pytest.raises(NotFoundError) as nf:
        _client(base).chat.completions.create(model="gpt-not-registered", messages=[{"role": "user", "content": "x"}])
    assert nf.value.body["code"] == "model_not_found"
    with Ledger.open(tl.data_dir) as lg:
        Registry(lg).set_status(tl.fingerprint, "suspended", "kill switch test")
        size = lg.size
    try:
        with pytest.raises(PermissionDeniedError) as exc:
            _client(base).chat.completions.create(model=str(model_dir), messages=[{"role": "user", "content": "x"}])
        assert exc.value.body["code"] == "model_not_active" and "suspended" in exc.value.body["message"]
        with Ledger.open(tl.data_dir) as lg:
            assert lg.size == size
    finally:
        with Ledger.open(tl.data_dir) as lg:
            Registry(lg).set_status(tl.fingerprint, "active", "reinstated after the test")


class _Broken(BaseHTTPRequestHandler):
    """An upstream that answers 200 with a body that is not JSON (a broken server, not a canned completion)."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = b'{"id": "x", "choices": [{"message": {"content": "trunc'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_upstream_down_and_malformed(model_dir, tmp_path):
    from openai import InternalServerError

    need_llm_stack()
    tl = make_log(tmp_path / "log", model_dir, {DEPLOYMENT: "private"})
    dead = f"http://127.0.0.1:{free_port()}"
    with process([*glasslog_command(), "gateway", "--data-dir", str(tl.data_dir), "--upstream", dead, "--deployment",
                  DEPLOYMENT, "--model", f"m={tl.fingerprint}"], "/v1/receipt", tmp_path / "gw1.log") as base:
        with Ledger.open(tl.data_dir) as lg:
            size = lg.size
        with pytest.raises(InternalServerError) as exc:
            _client(base).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert exc.value.status_code == 502 and exc.value.body["code"] == "upstream_unreachable"
        # what the gateway cannot read it does not forward (a 502 would mean it tried the dead upstream): an upstream
        # with a default model, or a laxer JSON parser, would otherwise answer with a completion nobody logged
        for body, code in ((b"{not json", "invalid_json"), (b"[1, 2]", "invalid_json"),
                           (b'{"messages": [{"role": "user", "content": "x"}]}', "model_required"),
                           (b'{"model": 7, "messages": []}', "model_required")):
            r = httpx.post(base + "/v1/chat/completions", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400 and r.json()["error"]["code"] == code, (body, r.text)
            assert "nothing was forwarded" in r.json()["error"]["message"]
        with Ledger.open(tl.data_dir) as lg:
            assert lg.size == size  # nothing logged
    broken = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    threading.Thread(target=broken.serve_forever, daemon=True).start()
    try:
        with process([*glasslog_command(), "gateway", "--data-dir", str(tl.data_dir), "--upstream",
                      f"http://127.0.0.1:{broken.server_address[1]}", "--deployment", DEPLOYMENT, "--model",
                      f"m={tl.fingerprint}"], "/v1/receipt", tmp_path / "gw2.log") as base:
            with pytest.raises(InternalServerError) as exc:
                _client(base).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            assert exc.value.status_code == 502 and exc.value.body["code"] == "upstream_malformed"
            with Ledger.open(tl.data_dir) as lg:
                assert lg.size == size
    finally:
        broken.shutdown()
    assert MODEL_NAME  # the registered card's name resolves too (see test_ingest_otlp)


def test_a_completion_the_log_cannot_take_is_withheld(upstream, model_dir, tmp_path, monkeypatch):
    """If the append fails, the client gets an OpenAI-shaped 503 instead of an output that is not on the log."""
    import asyncio

    from glasslog.ingest.gateway import Gateway, GatewayConfig
    from glasslog.storage import StorageUnavailable

    need_llm_stack()
    tl = make_log(tmp_path / "log", model_dir, {DEPLOYMENT: "public-service"})
    gw = Gateway(GatewayConfig(tl.data_dir, upstream, DEPLOYMENT, aliases={str(model_dir): tl.fingerprint}))

    def refuse(*args, **kwargs):
        raise StorageUnavailable("the log's database is busy")

    monkeypatch.setattr(gw, "_append", refuse)

    async def call():
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw), base_url="http://gateway", timeout=120) as c:
                return await c.post("/v1/chat/completions", json={"model": str(model_dir), "max_tokens": 3,
                                                                  "messages": [{"role": "user", "content": "x"}]})
        finally:
            await gw.aclose()

    r = asyncio.run(call())
    assert r.status_code == 503 and r.json()["error"]["code"] == "log_unavailable"
    assert "withheld" in r.json()["error"]["message"] and "x-glasslog-index" not in r.headers
