#!/usr/bin/env python3
"""The fake provider of the integration tests and the demo: OpenAI's HTTP API here, Anthropic,
Gemini and Bedrock in fake_dialects/, deterministic; and the replay of recorded provider
answers from tests/fixtures (below). Stdlib only.

    python integration/fake_provider.py --port 18080 [--host 127.0.0.1] [--verbose]

Endpoints (any path prefix is accepted, e.g. /v1/..., /openai/v1/...):

  POST <prefix>/chat/completions   OpenAI Chat Completions, JSON or SSE (``stream: true``)
  POST <prefix>/embeddings         OpenAI Embeddings (float or base64 encoding_format)
  GET  /__fake/health              200 "ok"
  GET  /__fake/requests            JSON list of the requests received since the last clear:
                                   {method, path, query, headers, body, raw}; ``path`` has no
                                   query string, ``query`` is the raw query string ("" if none),
                                   ``headers`` is a dict with lower-cased names (repeated
                                   headers joined with ", "), ``body`` is the parsed JSON if the
                                   body parses as JSON, else the raw text ("" when empty);
                                   ``raw`` is the body's exact text (the bytes as UTF-8).
                                   /__fake/* requests themselves are not recorded.
  DELETE /__fake/requests          clears the recorded requests

Order of checks for an API request: record it -> ``x-fake-replay`` -> ``x-fake-status`` ->
authentication -> body validation -> reply. Anything else answers 404 with OpenAI's "Invalid
URL" error.

Replay (any path, any dialect; integration/test_replay.py): ``x-fake-replay: <set>/<file>``
answers with the bytes of ``tests/fixtures/<set>/<file>``, the recorded provider answers the
native tests decode, once the request passes the validation of the API its path names (as
below and in fake_dialects/; else 400 with the validator's message). The content type
follows the extension: ``.json`` application/json, ``.sse`` text/event-stream (sent chunked in pieces of
``x-fake-replay-chunk`` bytes, default 64, each flushed, so Envoy hands the module the
stream in several parts), ``.eventstream`` application/vnd.amazon.eventstream (Bedrock's
binary frames, chunked the same way), ``.html`` text/html. The status is 200, or
``x-fake-replay-status: S`` (a recorded error body). A name outside tests/fixtures/ or a
missing file answers 404. This is how a provider's exact bytes (thinking signatures, cut
streams, mid-stream errors, binary frames) reach the gateway; the computed answers below
are for the tests that need an answer to follow from the request.

Authentication: ``Authorization: Bearer <key>`` with any non-empty key, else 401 with
``code: "invalid_api_key"``. The key is recorded with the headers, so tests can check which
key the gateway sent upstream.

Validation (400, OpenAI error shape ``{"error": {message, type, param, code}}``): the body
must be a JSON object; ``model`` a string; ``messages`` a non-empty array of objects whose
``role`` is one of system, developer, user, assistant, tool, function; ``stream_options``
(non-null) only when ``stream`` is true.

Deterministic content and usage:

  reply             = "echo: " + text of the last user message ("" if there is none), where
                      the text of a message is its ``content`` string, or, for an array of
                      parts, the ``text`` of its parts joined with one space.
                      With ``x-fake-words: N`` the reply is "w1 w2 ... wN" instead.
  prompt_tokens     = number of whitespace-separated words in the text of all messages
                      + 2 * number of messages
  completion_tokens = number of whitespace-separated words in the reply
  total_tokens      = prompt_tokens + completion_tokens
  details           prompt_tokens_details {cached_tokens: 0, audio_tokens: 0}
                    (cached_tokens = ``x-fake-cache-read: N``, at most prompt_tokens),
                    completion_tokens_details {reasoning_tokens: 0, audio_tokens: 0,
                    accepted_prediction_tokens: 0, rejected_prediction_tokens: 0}

  Embeddings: one vector of 8 floats per input (derived from a hash of the input),
  usage prompt_tokens = total_tokens = number of whitespace-separated words in all inputs
  (a token-array input counts its length).

Streaming (``stream: true``), over HTTP/1.1 with ``Transfer-Encoding: chunked``, each event
``data: {json}\\n\\n`` flushed on its own, ``object: "chat.completion.chunk"``:
  1. delta {"role": "assistant", "content": "", "refusal": null}
  2. one chunk per word of the reply: delta {"content": word + " "} (no trailing space on
     the last word; the contents concatenate to exactly the non-streamed reply)
  3. delta {} with finish_reason "stop"
  4. only with ``stream_options.include_usage``: every chunk above carries ``"usage": null``
     and a last chunk has ``"choices": []`` and the usage object
  5. ``data: [DONE]``

Test controls (request headers; they pass through Envoy):
  x-fake-chunk-delay-ms: N   sleep N ms between stream chunks
  x-fake-status: S           answer with status S and an OpenAI error body
  x-fake-words: N            reply with N words "w1 ... wN" instead of the echo
  (max_completion_tokens or max_tokens cut the reply to that many words, finish_reason "length")
  x-fake-tool-call: NAME     answer with a call to tool NAME (which must be among the request's
                             tools), arguments {"query": <last user text>}, finish_reason
                             "tool_calls"; streamed as argument fragments of 8 characters;
                             completion_tokens = words of the arguments JSON

Azure OpenAI paths (/openai/deployments/{name}/chat/completions?api-version=...) take the key
in the `api-key` header and the model from the deployment name.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fake_dialects  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
REPLAY_TYPES = {".json": "application/json", ".sse": "text/event-stream",
                ".eventstream": "application/vnd.amazon.eventstream", ".html": "text/html"}

VALID_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
SYSTEM_FINGERPRINT = "fp_fake"

_lock = threading.Lock()
_recorded: list[dict] = []
_counter = 0


def _next_id(prefix: str) -> str:
    global _counter
    with _lock:
        _counter += 1
        return f"{prefix}-fake-{_counter}"


# ----------------------------------------------------------------------------- content


def message_text(message: dict) -> str:
    """Text of one message: the content string, or its text parts joined with a space."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            p["text"]
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
        return " ".join(parts)
    return ""


def words(text: str) -> int:
    return len(text.split())


def reply_for(messages: list[dict], fake_words: int | None) -> str:
    if fake_words is not None:
        return " ".join(f"w{i}" for i in range(1, fake_words + 1))
    last_user = ""
    for m in messages:
        if m.get("role") == "user":
            last_user = message_text(m)
    return "echo: " + last_user


def usage_for(messages: list[dict], reply: str) -> dict:
    prompt = sum(words(message_text(m)) for m in messages) + 2 * len(messages)
    completion = words(reply)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def stream_pieces(reply: str) -> list[str]:
    """Each word with its following whitespace; they concatenate to exactly `reply`."""
    pieces = re.findall(r"\S+\s*", reply)
    lead = reply[: len(reply) - len(reply.lstrip())]
    if pieces and lead:
        pieces[0] = lead + pieces[0]
    return pieces or ([reply] if reply else [])


def embedding_vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [round((b - 128) / 128.0, 6) for b in digest[:8]]


# ----------------------------------------------------------------------------- errors


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_for_status(status: int) -> ApiError:
    if status == 401:
        return ApiError(401, "Incorrect API key provided (x-fake-status).",
                        code="invalid_api_key")
    if status == 429:
        return ApiError(429, "Rate limit reached (x-fake-status).", type_="requests",
                        code="rate_limit_exceeded")
    if status >= 500:
        return ApiError(status, "The server is overloaded (x-fake-status).",
                        type_="server_error")
    return ApiError(status, f"Fake error {status} (x-fake-status).")


def _type_name(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def parse_json_object(raw: bytes) -> dict:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "We could not parse the JSON body of your request. (HINT: This "
                       "likely means you aren't using your HTTP library correctly. The OpenAI "
                       "API expects a JSON payload, but what was sent was not valid JSON.)")
    if not isinstance(body, dict):
        raise ApiError(400, f"Invalid type for request body: expected an object, but got "
                       f"{_type_name(body)} instead.")
    return body


def require_model(body: dict) -> str:
    model = body.get("model")
    if model is None:
        raise ApiError(400, "you must provide a model parameter")
    if not isinstance(model, str):
        raise ApiError(400, f"Invalid type for 'model': expected a string, but got "
                       f"{_type_name(model)} instead.", param="model", code="invalid_type")
    return model


def validate_chat(body: dict) -> None:
    require_model(body)
    messages = body.get("messages")
    if messages is None:
        raise ApiError(400, "Missing required parameter: 'messages'.", param="messages",
                       code="missing_required_parameter")
    if not isinstance(messages, list):
        raise ApiError(400, f"Invalid type for 'messages': expected an array of objects, but "
                       f"got {_type_name(messages)} instead.", param="messages",
                       code="invalid_type")
    if not messages:
        raise ApiError(400, "Invalid 'messages': empty array. Expected an array with minimum "
                       "length 1, but got an empty array instead.", param="messages",
                       code="empty_array")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ApiError(400, f"Invalid type for 'messages[{i}]': expected an object, but "
                           f"got {_type_name(m)} instead.", param=f"messages[{i}]",
                           code="invalid_type")
        role = m.get("role")
        if role is None:
            raise ApiError(400, f"Missing required parameter: 'messages[{i}].role'.",
                           param=f"messages[{i}].role", code="missing_required_parameter")
        if role not in VALID_ROLES:
            shown = f"'{role}'" if isinstance(role, str) else json.dumps(role)
            raise ApiError(400, f"Invalid value: {shown}. Supported values are: "
                           "'system', 'assistant', 'user', 'function', 'tool', and "
                           "'developer'.", param=f"messages[{i}].role", code="invalid_value")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise ApiError(400, f"Invalid type for 'stream': expected a boolean, but got "
                       f"{_type_name(stream)} instead.", param="stream", code="invalid_type")
    if body.get("stream_options") is not None and stream is not True:
        raise ApiError(400, "The 'stream_options' parameter is only allowed when 'stream' "
                       "is enabled.", param="stream_options")


def validate_embeddings(body: dict) -> list:
    require_model(body)
    inp = body.get("input")
    if inp is None:
        raise ApiError(400, "Missing required parameter: 'input'.", param="input",
                       code="missing_required_parameter")
    if isinstance(inp, str):
        return [inp]
    if isinstance(inp, list) and inp:
        if all(isinstance(x, int) for x in inp):  # one token array
            return [inp]
        if all(isinstance(x, (str, list)) for x in inp):
            return inp
    raise ApiError(400, "'$.input' is invalid. Please check the API reference: "
                   "https://platform.openai.com/docs/api-reference.", param="input")


# ----------------------------------------------------------------------------- handler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1.0"
    verbose = False

    def version_string(self):
        return self.server_version

    # -- plumbing

    def log_message(self, fmt, *args):  # noqa: N802 (stdlib name)
        if self.verbose:
            sys.stderr.write("fake: " + (fmt % args) + "\n")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                line = self.rfile.readline()
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until an empty line
                    while True:
                        t = self.rfile.readline()
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    break
                out += self.rfile.read(size)
                self.rfile.readline()  # CRLF after the chunk
            return bytes(out)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status: int, obj, extra: dict | None = None):
        self._send(status, json.dumps(obj).encode("utf-8"), "application/json", extra)

    def _send_error(self, err: ApiError):
        self._send_json(err.status, err.body)

    def _headers_dict(self) -> dict:
        out: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            out[key] = f"{out[key]}, {value}" if key in out else value
        return out

    def _record(self, path: str, query: str, raw: bytes):
        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(text) if text else ""
        except json.JSONDecodeError:
            body = text
        entry = {"method": self.command, "path": path, "query": query,
                 "headers": self._headers_dict(), "body": body, "raw": text}
        with _lock:
            _recorded.append(entry)

    def _int_header(self, name: str) -> int | None:
        value = self.headers.get(name)
        if value is None:
            return None
        try:
            return int(value.strip())
        except ValueError:
            return None

    # -- helpers for fake_dialects endpoints

    def int_header(self, name: str) -> int | None:
        return self._int_header(name)

    def send_json(self, status: int, obj, extra: dict | None = None):
        self._send_json(status, obj, extra)

    def send_bytes(self, status: int, body: bytes, content_type: str, extra: dict | None = None):
        self._send(status, body, content_type, extra)

    def start_stream(self, content_type: str, status: int = 200):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data: bytes):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- dispatch

    def do_GET(self):  # noqa: N802
        self._dispatch()

    def do_POST(self):  # noqa: N802
        self._dispatch()

    def do_DELETE(self):  # noqa: N802
        self._dispatch()

    def do_PUT(self):  # noqa: N802
        self._dispatch()

    def do_PATCH(self):  # noqa: N802
        self._dispatch()

    def _dispatch(self):
        url = urlsplit(self.path)
        path, query = url.path, url.query
        raw = self._read_body()
        try:
            if path.startswith("/__fake/"):
                return self._control(path)
            self._record(path, query, raw)
            if self.headers.get("x-fake-replay"):
                return self._replay(self.headers["x-fake-replay"], path, raw)
            dialect_endpoint = fake_dialects.route(self.command, path)
            if dialect_endpoint is not None:
                return dialect_endpoint(self, path, query, raw)
            endpoint = None
            if self.command == "POST" and path.endswith("/chat/completions"):
                endpoint = self._chat
            elif self.command == "POST" and path.endswith("/embeddings"):
                endpoint = self._embeddings
            elif self.command == "POST" and path.endswith("/responses"):
                endpoint = self._responses
            if endpoint is None:
                raise ApiError(404, f"Invalid URL ({self.command} {path})")
            status = self._int_header("x-fake-status")
            if status is not None and 100 <= status <= 599:
                raise error_for_status(status)
            body = parse_json_object(raw)
            azure_deployment = self._azure_deployment(path, query)
            if azure_deployment is not None:
                # Azure takes the model from the deployment in the path.
                body.setdefault("model", azure_deployment)
            else:
                self._authenticate()
            endpoint(body)
        except ApiError as err:
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _control(self, path: str):
        if path == "/__fake/health" and self.command == "GET":
            return self._send(200, b"ok", "text/plain")
        if path == "/__fake/requests" and self.command == "GET":
            with _lock:
                snapshot = list(_recorded)
            return self._send_json(200, snapshot)
        if path == "/__fake/requests" and self.command == "DELETE":
            with _lock:
                _recorded.clear()
            return self._send_json(200, {"cleared": True})
        raise ApiError(404, f"Invalid URL ({self.command} {path})")

    def _replay(self, name: str, request_path: str, raw: bytes):
        """``x-fake-replay``: a fixture's bytes, as recorded from the provider, once the
        request passes the API's validation."""
        problem = fake_dialects.request_problem(request_path, raw)
        if problem is None and request_path.endswith("/chat/completions"):
            try:
                validate_chat(parse_json_object(raw))
            except ApiError as err:
                problem = str(err)
        if problem is not None:
            raise ApiError(400, f"x-fake-replay: the API would refuse this request: {problem}")
        path = (FIXTURES / name).resolve()
        if FIXTURES not in path.parents or path.suffix not in REPLAY_TYPES or not path.is_file():
            raise ApiError(404, f"x-fake-replay: no fixture tests/fixtures/{name}")
        body = path.read_bytes()
        status = self._int_header("x-fake-replay-status") or 200
        if path.suffix not in (".sse", ".eventstream"):
            return self._send(status, body, REPLAY_TYPES[path.suffix])
        size = max(self._int_header("x-fake-replay-chunk") or 64, 1)
        self.start_stream(REPLAY_TYPES[path.suffix], status)
        for i in range(0, len(body), size):
            self.write_chunk(body[i:i + size])
        self.end_stream()

    def _azure_deployment(self, path: str, query: str) -> str | None:
        """Azure OpenAI: /openai/deployments/{name}/...?api-version=..., key in `api-key`."""
        match = re.match(r"^/openai/deployments/([^/]+)/", path)
        if match is None:
            return None
        if not self.headers.get("api-key", "").strip():
            raise ApiError(401, "Access denied due to missing subscription key. Make sure to include "
                           "subscription key when making requests to an API.", code="401")
        if "api-version=" not in query:
            raise ApiError(404, "Resource not found", code="404")
        return match.group(1)

    def _authenticate(self):
        auth = self.headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(401, "You didn't provide an API key. You need to provide your API "
                           "key in an Authorization header using Bearer auth (i.e. "
                           "Authorization: Bearer YOUR_KEY).", code="invalid_api_key")

    # -- endpoints

    def _chat(self, body: dict):
        validate_chat(body)
        messages = body["messages"]
        fake_words = self._int_header("x-fake-words")
        if fake_words is not None:
            fake_words = max(fake_words, 0)
        reply = reply_for(messages, fake_words)
        finish_reason = "stop"
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if isinstance(limit, int) and limit >= 0 and len(reply.split()) > limit:
            # Like the real API, generation stops at the output limit.
            reply = " ".join(reply.split()[:limit])
            finish_reason = "length"
        tool_call = self._tool_call(body, messages)
        if tool_call is not None:
            reply = tool_call["function"]["arguments"]
        usage = usage_for(messages, reply)
        cached = self._int_header("x-fake-cache-read")
        if cached is not None:
            usage["prompt_tokens_details"]["cached_tokens"] = min(max(cached, 0), usage["prompt_tokens"])
        cid = _next_id("chatcmpl")
        created = int(time.time())
        if tool_call is not None:
            return self._chat_tool_call(body, cid, created, tool_call, usage)
        if body.get("stream") is True:
            opts = body.get("stream_options") or {}
            include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
            return self._chat_stream(cid, created, body["model"], reply, usage, include_usage, finish_reason)
        self._send_json(200, {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": body["model"],
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": reply, "refusal": None,
                            "annotations": []},
                "logprobs": None,
                "finish_reason": finish_reason,
            }],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        })

    def _tool_call(self, body: dict, messages: list[dict]) -> dict | None:
        """`x-fake-tool-call: NAME`: answer with a call to that tool instead of text."""
        name = self.headers.get("x-fake-tool-call")
        if not name:
            return None
        tools = body.get("tools") or []
        names = [t.get("function", {}).get("name") for t in tools if isinstance(t, dict)]
        if name not in names:
            raise ApiError(400, f"x-fake-tool-call names {name!r}, which is not among the request's tools")
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        arguments = json.dumps({"query": message_text(last_user)})
        return {"id": f"call_fake_{_next_id('x').split('-')[-1]}", "type": "function",
                "function": {"name": name, "arguments": arguments}}

    def _chat_tool_call(self, body, cid, created, tool_call, usage):
        model = body["model"]
        if body.get("stream") is not True:
            return self._send_json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": None,
                                                     "tool_calls": [tool_call], "refusal": None,
                                                     "annotations": []},
                             "logprobs": None, "finish_reason": "tool_calls"}],
                "usage": usage, "service_tier": "default", "system_fingerprint": SYSTEM_FINGERPRINT,
            })
        opts = body.get("stream_options") or {}
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True

        def chunk(delta, finish=None, with_usage=None):
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "service_tier": "default", "system_fingerprint": SYSTEM_FINGERPRINT,
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if include_usage:
                obj["usage"] = with_usage
            return obj

        arguments = tool_call["function"]["arguments"]
        pieces = [arguments[i:i + 8] for i in range(0, len(arguments), 8)]
        head = {"index": 0, "id": tool_call["id"], "type": "function",
                "function": {"name": tool_call["function"]["name"], "arguments": ""}}
        events = [chunk({"role": "assistant", "content": None, "tool_calls": [head], "refusal": None})]
        events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces]
        events.append(chunk({}, "tool_calls"))
        if include_usage:
            final = chunk({}, None, usage)
            final["choices"] = []
            events.append(final)
        self.start_stream("text/event-stream; charset=utf-8")
        for e in events:
            self.write_chunk(f"data: {json.dumps(e, separators=(',', ':'))}\n\n".encode())
        self.write_chunk(b"data: [DONE]\n\n")
        self.end_stream()

    def _chat_stream(self, cid, created, model, reply, usage, include_usage, finish_reason="stop"):
        delay = max(self._int_header("x-fake-chunk-delay-ms") or 0, 0) / 1000.0

        def chunk(choices, with_usage=None):
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created,
                   "model": model, "service_tier": "default",
                   "system_fingerprint": SYSTEM_FINGERPRINT, "choices": choices}
            if include_usage:
                obj["usage"] = with_usage
            return obj

        def choice(delta, finish=None):
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

        events = [chunk(choice({"role": "assistant", "content": "", "refusal": None}))]
        events += [chunk(choice({"content": piece})) for piece in stream_pieces(reply)]
        events.append(chunk(choice({}, finish_reason)))
        if include_usage:
            events.append(chunk([], usage))

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        payloads = [f"data: {json.dumps(e, separators=(',', ':'))}\n\n".encode("utf-8")
                    for e in events]
        payloads.append(b"data: [DONE]\n\n")
        for i, data in enumerate(payloads):
            if i > 0 and delay > 0:
                time.sleep(delay)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _responses(self, body: dict):
        """OpenAI Responses API: `input` a string or a list of messages; usage on the
        response object and, streamed, on `response.completed`."""
        model = body.get("model")
        if not isinstance(model, str):
            raise ApiError(400, "Missing required parameter: 'model'.", param="model")
        raw_input = body.get("input")
        if isinstance(raw_input, str):
            messages = [{"role": "user", "content": raw_input}]
        elif isinstance(raw_input, list) and raw_input:
            messages = [m for m in raw_input if isinstance(m, dict)]
        else:
            raise ApiError(400, "Missing required parameter: 'input'.", param="input")
        reply = reply_for(messages, self._int_header("x-fake-words"))
        chat_usage = usage_for(messages, reply)
        usage = {"input_tokens": chat_usage["prompt_tokens"], "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": chat_usage["completion_tokens"], "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": chat_usage["total_tokens"]}
        rid = _next_id("resp")
        message = {"id": _next_id("msg"), "type": "message", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": reply, "annotations": []}]}
        response = {"id": rid, "object": "response", "created_at": int(time.time()), "status": "completed",
                    "model": model, "output": [message], "usage": usage}
        if body.get("stream") is not True:
            return self._send_json(200, response)
        self.start_stream("text/event-stream; charset=utf-8")
        pending = dict(response, status="in_progress", output=[], usage=None)
        item = {"id": message["id"], "output_index": 0}
        part = {"type": "output_text", "text": "", "annotations": []}
        events = [("response.created", {"type": "response.created", "response": pending}),
                  ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0,
                                                  "item": dict(message, status="in_progress", content=[])}),
                  ("response.content_part.added", {"type": "response.content_part.added", "item_id": item["id"],
                                                   "output_index": 0, "content_index": 0, "part": part})]
        for piece in stream_pieces(reply):
            events.append(("response.output_text.delta", {"type": "response.output_text.delta",
                                                          "item_id": message["id"], "output_index": 0,
                                                          "content_index": 0, "delta": piece}))
        done_part = dict(part, text=reply)
        events += [("response.output_text.done", {"type": "response.output_text.done", "item_id": item["id"],
                                                  "output_index": 0, "content_index": 0, "text": reply}),
                   ("response.content_part.done", {"type": "response.content_part.done", "item_id": item["id"],
                                                   "output_index": 0, "content_index": 0, "part": done_part}),
                   ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0,
                                                  "item": message}),
                   ("response.completed", {"type": "response.completed", "response": response})]
        for seq, (name, data) in enumerate(events):
            data["sequence_number"] = seq
            self.write_chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self.end_stream()

    def _embeddings(self, body: dict):
        inputs = validate_embeddings(body)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        tokens = 0
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                text = item
                tokens += words(item)
            else:
                text = " ".join(str(t) for t in item)
                tokens += len(item)
            vec = embedding_vector(text)
            emb = (base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")
                   if as_base64 else vec)
            data.append({"object": "embedding", "index": i, "embedding": emb})
        self._send_json(200, {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Deterministic fake OpenAI API.")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    Handler.verbose = args.verbose
    server = Server((args.host, args.port), Handler)
    print(f"fake_provider: listening on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
