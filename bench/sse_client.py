"""Sequential streaming client: time to first byte, first event and whole stream (stdlib only).

Sends the same POST `n` times, one after the other, on one kept-alive HTTP/1.1 connection
(reconnecting if the server closes it), and for each request records, from the moment the
request was written:
  ttfb   the first byte of the response (status line)
  ttfe   the first byte of the first SSE event (`data:` in the body): the first token
  total  the end of the body (the last chunk of a chunked body)
"""

from __future__ import annotations

import socket
import time


class StreamError(RuntimeError):
    pass


def _request_bytes(host: str, port: int, path: str, body: bytes, headers: dict) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", f"content-length: {len(body)}",
             "content-type: application/json", "accept: text/event-stream"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _one(sock: socket.socket, request: bytes) -> tuple[int, float, float | None, float]:
    t0 = time.perf_counter()
    sock.sendall(request)
    buf = b""
    ttfb = None
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise StreamError("connection closed before the response headers")
        if ttfb is None:
            ttfb = time.perf_counter() - t0
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    chunked = headers.get(b"transfer-encoding") == b"chunked"
    length = int(headers[b"content-length"]) if b"content-length" in headers else None
    body = bytearray()
    ttfe = None
    pending = bytearray(rest)  # unparsed chunked framing
    done = False
    while True:
        now = time.perf_counter() - t0
        if chunked:
            while True:
                eol = pending.find(b"\r\n")
                if eol < 0:
                    break
                size = int(bytes(pending[:eol]).split(b";")[0] or b"0", 16)
                if size == 0:
                    if pending.find(b"\r\n", eol + 2) < 0:
                        break
                    done = True
                    break
                if len(pending) < eol + 2 + size + 2:
                    break
                body += pending[eol + 2:eol + 2 + size]
                del pending[:eol + 2 + size + 2]
        else:
            body += pending
            pending.clear()
            done = length is not None and len(body) >= length
        if ttfe is None and b"data:" in body:
            ttfe = now
        if done:
            return status, ttfb, ttfe, now
        data = sock.recv(65536)
        if not data:
            if not chunked and length is None:
                return status, ttfb, ttfe, time.perf_counter() - t0
            raise StreamError("connection closed in the middle of the body")
        pending += data


def run(host: str, port: int, path: str, body: bytes, headers: dict, n: int,
        warmup: int = 10) -> dict:
    """Runs warmup + n requests; returns {"ttfb": [...], "ttfe": [...], "total": [...]}
    in seconds for the n measured ones, and "errors" (non-200 answers or broken streams)."""
    request = _request_bytes(host, port, path, body, headers)
    out = {"ttfb": [], "ttfe": [], "total": [], "errors": 0}
    sock = None
    for i in range(warmup + n):
        if sock is None:
            sock = socket.create_connection((host, port), timeout=30)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            status, ttfb, ttfe, total = _one(sock, request)
        except (OSError, StreamError, ValueError, IndexError):
            sock.close()
            sock = None
            out["errors"] += 1
            continue
        if i < warmup:
            continue
        if status != 200 or ttfe is None:
            out["errors"] += 1
            continue
        out["ttfb"].append(ttfb)
        out["ttfe"].append(ttfe)
        out["total"].append(total)
    if sock is not None:
        sock.close()
    return out
