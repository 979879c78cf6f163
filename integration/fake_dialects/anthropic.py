"""Anthropic Messages dialect of the fake provider: ``POST <prefix>/v1/messages``.

Order of checks: ``x-fake-status`` -> ``x-api-key`` (401 authentication_error; the gateway
sends the provider key there) -> ``anthropic-version`` (400) -> body validation (400) -> reply. Every error has Anthropic's
shape ``{"type": "error", "error": {"type", "message"}, "request_id"}`` and a
``request-id`` header.

Validation, as the real API (2023-06-01) answers: body a JSON object; ``model`` a string;
``max_tokens`` an integer >= 1; ``messages`` a non-empty array of ``{role, content}`` with
role ``user`` or ``assistant`` (an assistant-first history is accepted: the API documents no
first-role rule, and merges consecutive same-role turns); content a string or an array of
blocks of known types (text, image, tool_use, tool_result, thinking, redacted_thinking,
document, search_result); non-empty content except for a final assistant message;
tool_use only in assistant turns, tool_result only in user turns; thinking blocks need a
``signature``; ``system`` a string or an array of text blocks; pairing: every tool_result
answers a tool_use of the previous assistant turn, and every tool_use (outside the last
turn) is answered in the next user turn; ``thinking`` enabled needs budget_tokens >= 1024
and < max_tokens; unknown top-level fields -> "Extra inputs are not permitted".

Deterministic content and usage (counts comparable with the OpenAI fake's):
  text of a message = content string, or its ``text`` blocks joined with one space
  reply             = "echo: " + text of the last user message that has text
                      ("x-fake-words: N" -> "w1 ... wN")
  input_tokens      = words(system text) + 2 (if system) + sum(words(text of each
                      message)) + 2 * len(messages)
  output_tokens     = words(reply) [+ words(thinking)] or, for a tool call, words of the
                      JSON-encoded tool input
  cache_read_input_tokens / cache_creation_input_tokens = ``x-fake-cache-read`` /
                      ``x-fake-cache-write`` (default 0), reported separately as the API does
  cache_creation    = the writes by TTL ({ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}):
                      all 1-hour when every ``cache_control`` of the request has ``"ttl": "1h"``,
                      else ``x-fake-cache-write-1h`` of them (default 0)
  thinking          : with thinking enabled/adaptive, a thinking block "thinking about: <last
                      user text>" with signature "fake-sig-<sha256 prefix>" comes first

Streaming (``stream: true``): ``event:`` + ``data:`` lines exactly like the API:
message_start (usage input/cache counts, output_tokens 1), per block content_block_start,
ping (after the first block start), content_block_delta (text_delta per word /
thinking_delta per word + signature_delta / input_json_delta in 3 pieces after an empty
one), content_block_stop, message_delta (stop_reason, cumulative usage incl. input counts),
message_stop. Recorded answers (stop sequences, mid-stream errors, HTML error pages, cut
streams) are replayed from tests/fixtures/anthropic/ (``x-fake-replay``, see fake_provider.py).

Test controls (request headers):
  x-fake-status: S            answer S with the matching Anthropic error type
  x-fake-words: N             reply "w1 ... wN"
  x-fake-chunk-delay-ms: N    sleep between stream events
  x-fake-tool-call: NAME      answer with a tool_use of NAME (must be in ``tools``),
                              input {"query": <last user text>}, stop_reason tool_use
  x-fake-cache-read / x-fake-cache-write: N   cache usage counts
  x-fake-cache-write-1h: N    of the writes, N with the 1-hour TTL (mixed TTLs)
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time

BLOCK_TYPES = ("text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking",
               "document", "search_result", "server_tool_use", "web_search_tool_result",
               "web_fetch_tool_result", "code_execution_tool_result", "mcp_tool_use",
               "mcp_tool_result", "container_upload")
TOP_LEVEL = {"model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "cache_control",
             "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "output_config",
             "service_tier", "container", "mcp_servers", "context_management", "inference_geo"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               429: "rate_limit_error", 500: "api_error", 504: "timeout_error",
               529: "overloaded_error"}

_lock = threading.Lock()
_counter = 0


def _next(prefix: str) -> str:
    global _counter
    with _lock:
        _counter += 1
        return f"{prefix}_fake{_counter:06d}"


class AnthropicError(Exception):
    def __init__(self, status: int, message: str, type_: str | None = None):
        super().__init__(message)
        self.status = status
        self.type = type_ or ERROR_TYPES.get(status, "api_error" if status >= 500 else
                                             "invalid_request_error")
        self.message = message


def route(method: str, path: str):
    if method == "POST" and path.endswith("/v1/messages"):
        return messages_endpoint
    return None


# ----------------------------------------------------------------------------- helpers


def _type_name(v) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(v), "value")


def words(text: str) -> int:
    return len(text.split())


def message_text(m: dict) -> str:
    content = m.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(b["text"] for b in content
                        if isinstance(b, dict) and b.get("type") == "text"
                        and isinstance(b.get("text"), str))
    return ""


def system_text(system) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return " ".join(b.get("text", "") for b in system if isinstance(b, dict))
    return ""


def last_user_text(messages: list) -> str:
    text = ""
    for m in messages:
        if m.get("role") == "user" and message_text(m):
            text = message_text(m)
    return text


def send_error(h, err: AnthropicError, request_id: str):
    h.send_json(err.status, {"type": "error", "error": {"type": err.type, "message": err.message},
                             "request_id": request_id}, {"request-id": request_id})


# ----------------------------------------------------------------------------- validation


def _bad(msg: str):
    raise AnthropicError(400, msg)


def validate(body) -> None:
    if not isinstance(body, dict):
        _bad(f"body: Input should be a valid dictionary, got {_type_name(body)}")
    for key in body:
        if key not in TOP_LEVEL:
            _bad(f"{key}: Extra inputs are not permitted")
    model = body.get("model")
    if model is None:
        _bad("model: Field required")
    if not isinstance(model, str):
        _bad("model: Input should be a valid string")
    mt = body.get("max_tokens")
    if mt is None:
        _bad("max_tokens: Field required")
    if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
        _bad("max_tokens: Input should be a valid integer greater than or equal to 1")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        if not isinstance(system, list):
            _bad("system: Input should be a valid string or list of text blocks")
        for i, b in enumerate(system):
            if not isinstance(b, dict) or b.get("type") != "text" or not isinstance(b.get("text"), str):
                _bad(f"system.{i}: Input should be a text block")
    messages = body.get("messages")
    if messages is None:
        _bad("messages: Field required")
    if not isinstance(messages, list):
        _bad("messages: Input should be a valid list")
    if not messages:
        _bad("messages: at least one message is required")
    for i, m in enumerate(messages):
        _validate_message(m, i, i == len(messages) - 1)
    _validate_pairing(messages)
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        _bad("stream: Input should be a valid boolean")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        _bad("stop_sequences: Input should be a valid list of strings")
    for key, hi in (("temperature", 1.0), ("top_p", 1.0)):
        v = body.get(key)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= hi):
            _bad(f"{key}: Input should be a number between 0 and {hi}")
    tools = body.get("tools")
    names = set()
    if tools is not None:
        if not isinstance(tools, list):
            _bad("tools: Input should be a valid list")
        for i, t in enumerate(tools):
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                _bad(f"tools.{i}.name: Field required")
            if t.get("type") in (None, "custom") and not isinstance(t.get("input_schema"), dict):
                _bad(f"tools.{i}.custom.input_schema: Field required")
            if not re.fullmatch(r"[a-zA-Z0-9_-]{1,128}", t["name"]):
                _bad(f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
            names.add(t["name"])
    tc = body.get("tool_choice")
    if tc is not None:
        if not isinstance(tc, dict) or tc.get("type") not in ("auto", "any", "tool", "none"):
            _bad("tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', "
                 "'tool', 'none'")
        if tc["type"] == "tool" and not isinstance(tc.get("name"), str):
            _bad("tool_choice.tool.name: Field required")
        if tc["type"] != "none" and not tools:
            _bad("tool_choice may only be specified while providing tools.")
    th = body.get("thinking")
    if th is not None:
        if not isinstance(th, dict) or th.get("type") not in ("enabled", "disabled", "adaptive"):
            _bad("thinking: Input tag does not match any of the expected tags: 'enabled', "
                 "'disabled', 'adaptive'")
        if th["type"] == "enabled":
            b = th.get("budget_tokens")
            if not isinstance(b, int) or b < 1024:
                _bad("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
            if b >= mt:
                _bad("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                     "documentation at https://docs.claude.com/en/docs/build-with-claude/"
                     "extended-thinking#max-tokens-and-context-window-size")
    meta = body.get("metadata")
    if meta is not None and (not isinstance(meta, dict) or
                             not isinstance(meta.get("user_id", ""), (str, type(None)))):
        _bad("metadata.user_id: Input should be a valid string")


def _validate_message(m, i: int, last: bool) -> None:
    p = f"messages.{i}"
    if not isinstance(m, dict):
        _bad(f"{p}: Input should be a valid dictionary")
    role = m.get("role")
    if role not in ("user", "assistant"):
        _bad(f"{p}.role: Input should be 'user' or 'assistant'")
    if "content" not in m:
        _bad(f"{p}.content: Field required")
    content = m["content"]
    if isinstance(content, str):
        empty = content == ""
    elif isinstance(content, list):
        empty = not content
        for j, b in enumerate(content):
            _validate_block(b, f"{p}.content.{j}", role)
    else:
        _bad(f"{p}.content: Input should be a valid string or list")
    if empty and not (last and role == "assistant"):
        _bad(f"{p}: all messages must have non-empty content except for the optional final "
             "assistant message")


def _validate_block(b, p: str, role: str) -> None:
    if not isinstance(b, dict) or b.get("type") not in BLOCK_TYPES:
        _bad(f"{p}: Input tag '{b.get('type') if isinstance(b, dict) else b}' found using 'type' "
             f"does not match any of the expected tags: {', '.join(repr(t) for t in BLOCK_TYPES)}")
    t = b["type"]
    if t == "text" and not isinstance(b.get("text"), str):
        _bad(f"{p}.text: Field required")
    if t == "image":
        src = b.get("source")
        if not isinstance(src, dict) or src.get("type") not in ("base64", "url", "file"):
            _bad(f"{p}.source: Input tag does not match any of the expected tags: 'base64', "
                 "'url', 'file'")
        if src["type"] == "base64" and src.get("media_type") not in (
                "image/jpeg", "image/png", "image/gif", "image/webp"):
            _bad(f"{p}.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
                 "'image/gif' or 'image/webp'")
        if src["type"] == "base64" and not isinstance(src.get("data"), str):
            _bad(f"{p}.source.base64.data: Field required")
        if src["type"] == "url" and not isinstance(src.get("url"), str):
            _bad(f"{p}.source.url.url: Field required")
    if t in ("tool_use", "thinking", "redacted_thinking") and role != "assistant":
        _bad(f"{p}: `{t}` blocks can only be in `assistant` messages")
    if t == "tool_result" and role != "user":
        _bad(f"{p}: `tool_result` blocks can only be in `user` messages")
    if t == "tool_use":
        if not isinstance(b.get("id"), str) or not isinstance(b.get("name"), str):
            _bad(f"{p}.tool_use: id and name are required")
        if not isinstance(b.get("input"), dict):
            _bad(f"{p}.tool_use.input: Input should be a valid dictionary")
    if t == "tool_result":
        if not isinstance(b.get("tool_use_id"), str):
            _bad(f"{p}.tool_result.tool_use_id: Field required")
        c = b.get("content")
        if c is not None and not isinstance(c, (str, list)):
            _bad(f"{p}.tool_result.content: Input should be a valid string or list")
        for k, inner in enumerate(c if isinstance(c, list) else []):
            if not isinstance(inner, dict) or inner.get("type") not in (
                    "text", "image", "document", "search_result"):
                _bad(f"{p}.tool_result.content.{k}: Input tag does not match any of the expected "
                     "tags: 'text', 'image', 'search_result', 'document'")
    if t == "thinking" and (not isinstance(b.get("thinking"), str)
                            or not isinstance(b.get("signature"), str)):
        _bad(f"{p}.thinking.signature: Field required")
    if t == "redacted_thinking" and not isinstance(b.get("data"), str):
        _bad(f"{p}.redacted_thinking.data: Field required")


def _blocks(m: dict) -> list:
    c = m.get("content")
    return c if isinstance(c, list) else []


def _validate_pairing(messages: list) -> None:
    turns: list[tuple[str, list[int]]] = []
    for i, m in enumerate(messages):
        if turns and turns[-1][0] == m["role"]:
            turns[-1][1].append(i)
        else:
            turns.append((m["role"], [i]))
    pending: list[tuple[int, str]] = []
    for role, idx in turns:
        if role == "assistant":
            pending = [(i, b["id"]) for i in idx for b in _blocks(messages[i])
                       if b.get("type") == "tool_use"]
            continue
        ids = {tid for _, tid in pending}
        answered = set()
        for i in idx:
            for j, b in enumerate(_blocks(messages[i])):
                if b.get("type") == "tool_result":
                    if b["tool_use_id"] not in ids:
                        _bad(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                             f"`tool_result` blocks: {b['tool_use_id']}. Each `tool_result` block "
                             "must have a corresponding `tool_use` block in the previous message.")
                    answered.add(b["tool_use_id"])
        missing = [(i, tid) for i, tid in pending if tid not in answered]
        if missing:
            _bad(f"messages.{missing[0][0]}: `tool_use` ids were found without `tool_result` "
                 f"blocks immediately after: {', '.join(t for _, t in missing)}. Each `tool_use` "
                 "block must have a corresponding `tool_result` block in the next message.")
        pending = []


# ----------------------------------------------------------------------------- answer


def _plan(h, body: dict) -> dict:
    """The deterministic answer: content blocks, stop reason and usage."""
    messages = body["messages"]
    user_text = last_user_text(messages)
    blocks = []
    out_words = 0
    th = body.get("thinking") or {}
    if th.get("type") in ("enabled", "adaptive"):
        thought = "thinking about: " + user_text
        sig = "fake-sig-" + hashlib.sha256(thought.encode()).hexdigest()[:16]
        blocks.append({"type": "thinking", "thinking": thought, "signature": sig})
        out_words += words(thought)
    stop_reason, stop_sequence = "end_turn", None
    tool = h.headers.get("x-fake-tool-call")
    if tool:
        names = [t.get("name") for t in body.get("tools") or []]
        if tool not in names:
            raise AnthropicError(400, f"x-fake-tool-call: tool {tool!r} is not in the request's "
                                 f"tools {names}")
        tool_input = {"query": user_text}
        blocks.append({"type": "tool_use", "id": _next("toolu"), "name": tool, "input": tool_input})
        out_words += words(json.dumps(tool_input))
        stop_reason = "tool_use"
    else:
        n = h.int_header("x-fake-words")
        reply = " ".join(f"w{i}" for i in range(1, max(n, 0) + 1)) if n is not None \
            else "echo: " + user_text
        blocks.append({"type": "text", "text": reply})
        out_words += words(reply)
    sys_text = system_text(body.get("system"))
    input_tokens = (words(sys_text) + (2 if body.get("system") else 0)
                    + sum(words(message_text(m)) for m in messages) + 2 * len(messages))
    written = max(h.int_header("x-fake-cache-write") or 0, 0)
    written_1h = min(_one_hour_writes(h, body, written), written)
    usage = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": written,
        "cache_creation": {"ephemeral_5m_input_tokens": written - written_1h,
                           "ephemeral_1h_input_tokens": written_1h},
        "cache_read_input_tokens": max(h.int_header("x-fake-cache-read") or 0, 0),
        "output_tokens": out_words,
        "service_tier": "standard",
    }
    return {"blocks": blocks, "stop_reason": stop_reason, "stop_sequence": stop_sequence,
            "usage": usage}


def _cache_ttls(value) -> list[str]:
    """The TTL of every cache_control in the request (5m when it names none)."""
    if isinstance(value, list):
        return [t for item in value for t in _cache_ttls(item)]
    if not isinstance(value, dict):
        return []
    own = [value["cache_control"].get("ttl", "5m")] if isinstance(value.get("cache_control"), dict) else []
    return own + [t for k, v in value.items() if k != "cache_control" for t in _cache_ttls(v)]


def _one_hour_writes(h, body: dict, written: int) -> int:
    """Writes with the 1-hour TTL: all of them when every breakpoint asks for 1h."""
    explicit = h.int_header("x-fake-cache-write-1h")
    if explicit is not None:
        return max(explicit, 0)
    ttls = _cache_ttls(body)
    return written if ttls and all(t == "1h" for t in ttls) else 0


def messages_endpoint(h, path: str, query: str, raw: bytes) -> None:
    request_id = _next("req")
    try:
        status = h.int_header("x-fake-status")
        if status is not None and 100 <= status <= 599:
            raise AnthropicError(status, f"Fake error {status} (x-fake-status).")
        if not (h.headers.get("x-api-key") or "").strip():
            raise AnthropicError(401, "x-api-key header is required")
        if not (h.headers.get("anthropic-version") or "").strip():
            raise AnthropicError(400, "anthropic-version: header is required")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise AnthropicError(400, f"There was an error parsing the body: {e}")
        validate(body)
        plan = _plan(h, body)
    except AnthropicError as err:
        return send_error(h, err, request_id)
    msg_id = _next("msg")
    if body.get("stream") is True:
        return _stream(h, body["model"], msg_id, plan)
    h.send_json(200, {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": plan["blocks"],
        "stop_reason": plan["stop_reason"],
        "stop_sequence": plan["stop_sequence"],
        "usage": plan["usage"],
    }, {"request-id": request_id})


def _pieces(text: str) -> list[str]:
    pieces = re.findall(r"\S+\s*", text)
    lead = text[: len(text) - len(text.lstrip())]
    if pieces and lead:
        pieces[0] = lead + pieces[0]
    return pieces


def _stream(h, model: str, msg_id: str, plan: dict) -> None:
    delay = max(h.int_header("x-fake-chunk-delay-ms") or 0, 0) / 1000.0
    usage = plan["usage"]
    start_usage = dict(usage, output_tokens=1)
    events = [("message_start", {"type": "message_start", "message": {
        "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": start_usage}})]
    for index, block in enumerate(plan["blocks"]):
        t = block["type"]
        if t == "text":
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        elif t == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            js = json.dumps(block["input"])
            third = max(len(js) // 3, 1)
            parts = [js[:third], js[third:2 * third], js[2 * third:]]
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in [""] + parts]
        events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": start}))
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": index,
                                            "delta": d}) for d in deltas]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": plan["stop_reason"], "stop_sequence": plan["stop_sequence"]},
        "usage": {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens",
                                        "cache_read_input_tokens", "output_tokens")}}))
    events.append(("message_stop", {"type": "message_stop"}))
    h.start_stream("text/event-stream; charset=utf-8")
    for i, (name, data) in enumerate(events):
        if i > 0 and delay > 0:
            time.sleep(delay)
        h.write_chunk(f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
                      .encode("utf-8"))
    h.end_stream()
