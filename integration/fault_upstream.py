"""A misbehaving LLM provider for the fault-injection suite (integration/test_faults.py).

Raw sockets, so it can do what a well-behaved HTTP server cannot: reset a connection before
or in the middle of a response, stall, cut a stream. The fault is chosen by the `model` the
provider receives (the gateway rewrites the client's model to the configured target, so each
configured model name is one fault); the dialect of the answer by the path (`.../messages` is
Anthropic, anything else OpenAI chat). Every connection is closed after one response.

Faults (MODES):
  ok                    a normal answer with usage
  reset_before_headers  the request is read, then the connection is reset (RST)
  reset_mid_body        headers and half the body are sent, then the connection is reset
  stall                 nothing is sent for STALL_SECONDS (past the test route's timeout)
  truncated             a complete HTTP response whose body is cut: an SSE stream without
                        its end (no [DONE] / message_stop), a JSON body cut in half
  non_json_200          200 text/html
  html_502              502 text/html (a proxy's error page)
  huge                  an answer of HUGE_TEXT_BYTES of text (past the module's response buffer)
  no_usage              a normal answer without any usage report
  slow_drip             a normal answer sent a few bytes at a time with pauses
  auth_401              401 with OpenAI's message quoting fragments of the provider key
  trailers              a normal answer sent chunked, ending with a trailer section (the
                        test Envoy's cluster passes upstream trailers: enable_trailers)

More faults for fallback chains (integration/test_fallback.py), outside MODES so that the
fault matrix of test_faults.py stays as it is:
  rate_limited_429      429 with `retry-after: 7` and a JSON error in the path's dialect
  server_500            500 with a JSON error in the path's dialect
  overloaded_529        Anthropic's 529 overloaded_error
  dies_before_first_event  200 text/event-stream headers, then a reset before any event
  stall_after_headers   200 text/event-stream headers, then nothing for STALL_SECONDS
  context_length        400 "context length exceeded" in the path's dialect (OpenAI's
                        `code: context_length_exceeded`, Anthropic's "prompt is too long")
  bad_request           400 invalid_request_error about a parameter (no trigger code)
  huge_error            400 whose JSON error message is HUGE_ERROR_BYTES long ("prompt is too long"
                        at its end): past what the module holds to read a code
"""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import threading
import time

CHAIN_MODES = ["rate_limited_429", "server_500", "overloaded_529", "dies_before_first_event"]
MODES = ["ok", "reset_before_headers", "reset_mid_body", "stall", "truncated", "non_json_200",
         "html_502", "huge", "no_usage", "slow_drip", "auth_401", "trailers"]
STALL_SECONDS = 3.0
HUGE_TEXT_BYTES = 300_000
HUGE_ERROR_BYTES = 100_000
TEXT = "fault injection answer " * 8
INPUT_TOKENS = 11
OUTPUT_TOKENS = 48
KEY_QUOTE = ("Incorrect API key provided: sk-upstr**********-key. You can find your API key at "
             "https://platform.openai.com/account/api-keys.")


# ----------------------------------------------------------------------------- bodies

def openai_json(model: str, text: str, usage: bool) -> bytes:
    body = {"id": "chatcmpl-fault", "object": "chat.completion", "created": 1700000000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}]}
    if usage:
        body["usage"] = {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS,
                         "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS}
    return json.dumps(body).encode()


def anthropic_json(model: str, text: str, usage: bool) -> bytes:
    body = {"id": "msg_fault", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None}
    if usage:
        body["usage"] = {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS}
    return json.dumps(body).encode()


def pieces(text: str, size: int = 40) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def openai_sse(model: str, text: str, usage: bool) -> list[bytes]:
    """One SSE event per element; the last one is `[DONE]`."""
    def chunk(delta, finish=None, **extra):
        c = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return b"data: " + json.dumps(c).encode() + b"\n\n"
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": p}) for p in pieces(text)]
    events.append(chunk({}, "stop"))
    if usage:
        u = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
             "choices": [], "usage": {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS,
                                      "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS}}
        events.append(b"data: " + json.dumps(u).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def anthropic_sse(model: str, text: str, usage: bool) -> list[bytes]:
    """One SSE event per element; the last one is `message_stop`."""
    def event(kind, data):
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
    start_usage = {"input_tokens": INPUT_TOKENS, "output_tokens": 1} if usage else {}
    events = [event("message_start", {"type": "message_start", "message": {
        "id": "msg_fault", "type": "message", "role": "assistant", "content": [], "model": model,
        "stop_reason": None, "stop_sequence": None, "usage": start_usage}}),
        event("content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}})]
    events += [event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": p}}) for p in pieces(text)]
    events.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}}
    if usage:
        delta["usage"] = {"output_tokens": OUTPUT_TOKENS}
    events.append(event("message_delta", delta))
    events.append(event("message_stop", {"type": "message_stop"}))
    return events


# ----------------------------------------------------------------------------- server

class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock: socket.socket = self.request
        sock.settimeout(10)
        try:
            head, body = read_request(sock)
        except (OSError, ValueError):
            return
        path = head.split(b" ", 2)[1].decode() if head.count(b" ") >= 2 else "/"
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = {}
        mode = str(request.get("model", "ok"))
        anthropic = path.rstrip("/").endswith("/messages")
        stream = bool(request.get("stream"))
        try:
            respond(sock, mode, anthropic, stream, str(request.get("model", "")))
        except OSError:
            pass


def read_request(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise ValueError("closed before the request head")
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if b"content-length" in headers:
        need = int(headers[b"content-length"])
        while len(rest) < need:
            more = sock.recv(65536)
            if not more:
                break
            rest += more
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            more = sock.recv(65536)
            if not more:
                break
            rest += more
        rest = dechunk(rest)
    return head, rest


def dechunk(raw: bytes) -> bytes:
    out = b""
    while raw:
        size_line, _, raw = raw.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, raw = out + raw[:size], raw[size + 2:]
    return out


def reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def head(status: str, content_type: str, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"content-type: {content_type}", "connection: close"]
    lines.append(f"content-length: {length}" if length is not None else "transfer-encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# The last chunk of a chunked body with a trailer field after it.
TRAILER_SECTION = b"0\r\nx-provider-trailer: 1\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def send_whole(sock, status: str, content_type: str, body: bytes) -> None:
    sock.sendall(head(status, content_type, len(body)) + body)


def json_error(anthropic: bool, kind: str, message: str) -> bytes:
    if anthropic:
        return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}}).encode()


def respond(sock: socket.socket, mode: str, anthropic: bool, stream: bool, model: str) -> None:
    if mode == "rate_limited_429":
        body = json_error(anthropic, "rate_limit_error", "Rate limit reached for requests")
        sock.sendall(b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 7\r\n"
                     + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
        return sock.close()
    if mode == "server_500":
        return send_whole(sock, "500 Internal Server Error", "application/json",
                          json_error(anthropic, "api_error", "The server had an error while processing your request"))
    if mode == "overloaded_529":
        return send_whole(sock, "529 Overloaded", "application/json",
                          json_error(anthropic, "overloaded_error", "Overloaded"))
    if mode == "context_length":
        if anthropic:
            body = json_error(True, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum")
        else:
            body = json.dumps({"error": {"message": "This model's maximum context length is 128000 tokens. However, "
                                         "your messages resulted in 130000 tokens.", "type": "invalid_request_error",
                                         "param": "messages", "code": "context_length_exceeded"}}).encode()
        return send_whole(sock, "400 Bad Request", "application/json", body)
    if mode == "huge_error":
        message = "x" * HUGE_ERROR_BYTES + " prompt is too long"
        return send_whole(sock, "400 Bad Request", "application/json",
                          json_error(anthropic, "invalid_request_error", message))
    if mode == "bad_request":
        return send_whole(sock, "400 Bad Request", "application/json",
                          json_error(anthropic, "invalid_request_error", "temperature: must be at most 1"))
    if mode == "stall_after_headers":
        sock.sendall(head("200 OK", "text/event-stream"))
        time.sleep(STALL_SECONDS)
        return sock.close()
    if mode == "dies_before_first_event":
        sock.sendall(head("200 OK", "text/event-stream"))
        time.sleep(0.05)
        return reset(sock)
    if mode == "reset_before_headers":
        return reset(sock)
    if mode == "stall":
        time.sleep(STALL_SECONDS)
        return sock.close()
    if mode == "non_json_200":
        return send_whole(sock, "200 OK", "text/html", b"<html><body>Service maintenance</body></html>")
    if mode == "html_502":
        return send_whole(sock, "502 Bad Gateway", "text/html",
                          b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>")
    if mode == "auth_401":
        error = {"error": {"message": KEY_QUOTE, "type": "invalid_request_error", "param": None,
                           "code": "invalid_api_key"}}
        return send_whole(sock, "401 Unauthorized", "application/json", json.dumps(error).encode())
    text = "x" * HUGE_TEXT_BYTES if mode == "huge" else TEXT
    usage = mode not in ("no_usage", "huge")
    if stream:
        events = (anthropic_sse if anthropic else openai_sse)(model, text, usage)
        if mode == "truncated":
            events = events[: len(events) // 2]
        sock.sendall(head("200 OK", "text/event-stream"))
        if mode == "reset_mid_body":
            sock.sendall(chunk(b"".join(events[: len(events) // 2])))
            time.sleep(0.05)
            return reset(sock)
        for event in events:
            if mode == "slow_drip":
                for j in range(0, len(event), 64):
                    sock.sendall(chunk(event[j:j + 64]))
                    time.sleep(0.005)
            else:
                sock.sendall(chunk(event))
        sock.sendall(TRAILER_SECTION if mode == "trailers" else b"0\r\n\r\n")
        return sock.close()
    body = (anthropic_json if anthropic else openai_json)(model, text, usage)
    if mode == "truncated":
        return send_whole(sock, "200 OK", "application/json", body[: len(body) // 2])
    if mode == "reset_mid_body":
        sock.sendall(head("200 OK", "application/json", len(body)) + body[: len(body) // 2])
        time.sleep(0.05)
        return reset(sock)
    if mode == "trailers":
        half = len(body) // 2
        sock.sendall(head("200 OK", "application/json") + chunk(body[:half]) + chunk(body[half:]) + TRAILER_SECTION)
        return sock.close()
    if mode == "slow_drip":
        sock.sendall(head("200 OK", "application/json", len(body)))
        for j in range(0, len(body), 64):
            sock.sendall(body[j:j + 64])
            time.sleep(0.005)
        return sock.close()
    send_whole(sock, "200 OK", "application/json", body)
    sock.close()


class FaultServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    # One connection per response: concurrent tests (and Envoy's retries) open many at once,
    # past socketserver's default backlog of 5.
    request_queue_size = 256


def start(port: int) -> FaultServer:
    server = FaultServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
