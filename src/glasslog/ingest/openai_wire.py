"""What the OpenAI chat completions and completions API says on the wire, read for the gateway
(``glasslog.ingest.gateway``): the prompt of a request, the outputs of a completion, and a streamed completion
(server-sent events) put back together from its chunks. No network and no log here.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["uint", "text", "jsonable", "prompt_value", "outputs", "split_events", "StreamState"]


def uint(v: Any) -> int | None:
    """A token count as reported: a non-negative integer below 2**53, else None."""
    return v if type(v) is int and 0 <= v < 2**53 else None


def text(v: Any, limit: int = 200) -> str | None:
    """Printable text of at most ``limit`` characters from a reported value, else None."""
    if not isinstance(v, str):
        return None
    v = "".join(c for c in v if c.isprintable())[:limit]
    return v or None


def jsonable(v: Any) -> bool:
    """True for a sampling parameter value that can go on the log as it is (finite numbers, text, lists, null)."""
    if isinstance(v, float):
        return v == v and abs(v) < 1e15
    return isinstance(v, (int, str, bool, list)) or v is None


def prompt_value(request: dict, operation: str) -> dict | None:
    """The prompt of a request as its private value: ``{"messages": [...]}`` (chat) or ``{"text": ...}`` /
    ``{"prompt": ...}`` (completions), None if the request carries none."""
    if operation == "chat":
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        out = []
        for m in messages:
            if not isinstance(m, dict):
                out.append({"role": "user", "content": str(m)})
                continue
            msg = {"role": str(m.get("role") or "user")}
            content = m.get("content")
            if isinstance(content, str):
                msg["content"] = content
            elif content is not None:
                msg["parts"] = content
            for k in ("name", "tool_calls", "tool_call_id"):
                if m.get(k) is not None:
                    msg[k] = m[k]
            out.append(msg)
        value: dict[str, Any] = {"messages": out}
    else:
        p = request.get("prompt")
        if p is None:
            return None
        value = {"text": p} if isinstance(p, str) else {"prompt": p}
    for k in ("tools", "response_format"):
        if request.get(k) is not None:
            value[k] = request[k]
    return value


def outputs(completion: dict, operation: str) -> list[dict] | None:
    """A completion's choices as output messages (``{"role", "content"}``, plus ``finish_reason`` and tool calls),
    None if it has no ``choices`` list."""
    choices = completion.get("choices")
    if not isinstance(choices, list):
        return None
    out = []
    for c in sorted((c for c in choices if isinstance(c, dict)), key=lambda c: c.get("index") or 0):
        if operation == "chat":
            msg = c.get("message") if isinstance(c.get("message"), dict) else {}
            m: dict[str, Any] = {"role": str(msg.get("role") or "assistant"),
                                 "content": msg.get("content") if isinstance(msg.get("content"), str) else ""}
            if msg.get("tool_calls"):
                m["tool_calls"] = msg["tool_calls"]
        else:
            m = {"role": "assistant", "content": c.get("text") if isinstance(c.get("text"), str) else ""}
        if isinstance(c.get("finish_reason"), str):
            m["finish_reason"] = c["finish_reason"]
        out.append(m)
    return out or None


def split_events(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete SSE events (each with its blank-line terminator, bytes as received) and the rest."""
    events = []
    while True:
        cut = -1
        for sep in (b"\n\n", b"\r\n\r\n"):
            k = buffer.find(sep)
            if k != -1 and (cut == -1 or k + len(sep) < cut):
                cut = k + len(sep)
        if cut == -1:
            return events, buffer
        events.append(buffer[:cut])
        buffer = buffer[cut:]


class StreamState:
    """A streamed completion put back together from its chunks."""

    def __init__(self, operation: str):
        self.operation = operation
        self.id: str | None = None
        self.model: str | None = None
        self.usage: dict | None = None
        self.texts: dict[int, list[str]] = {}
        self.roles: dict[int, str] = {}
        self.finish: dict[int, str] = {}
        self.tool_calls: dict[int, list] = {}
        self.malformed = False
        self.done_event: bytes | None = None

    def feed(self, event: bytes) -> bool:
        """Take one SSE event; True if it is the ``[DONE]`` marker."""
        data = [line[5:].lstrip() for line in event.replace(b"\r\n", b"\n").split(b"\n") if line.startswith(b"data:")]
        if not data:
            return False
        payload = b"\n".join(data)
        if payload.strip() == b"[DONE]":
            return True
        try:
            chunk = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            self.malformed = True
            return False
        if not isinstance(chunk, dict):
            self.malformed = True
            return False
        self.id = self.id or (chunk.get("id") if isinstance(chunk.get("id"), str) else None)
        self.model = self.model or (chunk.get("model") if isinstance(chunk.get("model"), str) else None)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for c in chunk.get("choices") or []:
            if not isinstance(c, dict):
                continue
            i = c.get("index") if type(c.get("index")) is int else 0
            if self.operation == "chat":
                delta = c.get("delta") if isinstance(c.get("delta"), dict) else {}
                if isinstance(delta.get("content"), str):
                    self.texts.setdefault(i, []).append(delta["content"])
                if isinstance(delta.get("role"), str):
                    self.roles[i] = delta["role"]
                if isinstance(delta.get("tool_calls"), list):
                    self.tool_calls.setdefault(i, []).extend(delta["tool_calls"])
            elif isinstance(c.get("text"), str):
                self.texts.setdefault(i, []).append(c["text"])
            self.texts.setdefault(i, [])
            if isinstance(c.get("finish_reason"), str):
                self.finish[i] = c["finish_reason"]
        return False

    def completion(self) -> dict:
        """The completion the chunks add up to, in the non-streaming shape."""
        choices = []
        for i in sorted(self.texts):
            text = "".join(self.texts[i])
            if self.operation == "chat":
                msg: dict[str, Any] = {"role": self.roles.get(i, "assistant"), "content": text}
                if self.tool_calls.get(i):
                    msg["tool_calls"] = self.tool_calls[i]
                choice: dict[str, Any] = {"index": i, "message": msg}
            else:
                choice = {"index": i, "text": text}
            if i in self.finish:
                choice["finish_reason"] = self.finish[i]
            choices.append(choice)
        out: dict[str, Any] = {"id": self.id, "model": self.model, "choices": choices}
        if self.usage:
            out["usage"] = self.usage
        return out

