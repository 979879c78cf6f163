"""A fake global rate-limit service for the integration tests: Envoy's gRPC
`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`, the API that
envoyproxy/ratelimit and Limitador implement, on 127.0.0.1.

    python fake_rls.py --grpc-port 18081 --http-port 18082 \
        --limit consumer=alice:100 --limit generic_key=llm-tokens:1000

Counting (like envoyproxy/ratelimit, which increments in Redis before it compares): a
`--limit K1=V1,K2=V2:N` applies to the descriptor whose entries are exactly
[(K1, V1), (K2, V2)] (in that order; one counter per descriptor, as envoyproxy/ratelimit's
leaf descriptors). Each such descriptor adds its hits to the counter and is OVER_LIMIT when
the counter, after the addition, exceeds N. Counters live for the process lifetime (no
windows). A descriptor with 0 hits therefore only checks ("is this budget already spent?"),
which is how the gateway's request-time check works. Descriptors without a limit are
recorded and answered OK. The response is OVER_LIMIT if any descriptor is.

Hits of a descriptor: its own `hits_addend` when set (Envoy sends the per-descriptor value
of `rate_limits[].hits_addend` there), else the request's `hits_addend`, else 1 (a request
field of 0 means "unset" in proto3, so 1, as the API documents).

Side port (HTTP, JSON) for tests:
    GET    /health     -> "ok"
    GET    /requests   -> [{"domain", "hits_addend" (request level, 0 = unset),
                            "descriptors": [{"entries": [[key, value], ...],
                                             "hits_addend": int | null, "hits": int}],
                            "overall_code": "OK" | "OVER_LIMIT", "time": float}]
    DELETE /requests   -> clears the records
    GET    /counters   -> {"K1=V1,K2=V2": {"limit": N, "used": n}}
    DELETE /counters   -> resets every counter to 0
    PUT    /limits     <- {"K1=V1,K2=V2": N, ...}: replaces all limits, counters start at 0

Wire format, decoded and encoded by hand (no generated code; field numbers from
envoy/service/ratelimit/v3/rls.proto and envoy/extensions/common/ratelimit/v3/ratelimit.proto):

    message RateLimitRequest {
      string domain = 1;
      repeated envoy.extensions.common.ratelimit.v3.RateLimitDescriptor descriptors = 2;
      uint32 hits_addend = 3;
    }
    message RateLimitDescriptor {
      message Entry { string key = 1; string value = 2; }
      message RateLimitOverride { uint32 requests_per_unit = 1; RateLimitUnit unit = 2; }
      repeated Entry entries = 1;
      RateLimitOverride limit = 2;               // ignored here
      google.protobuf.UInt64Value hits_addend = 3;   // { uint64 value = 1; } (per descriptor)
    }
    message RateLimitResponse {
      enum Code { UNKNOWN = 0; OK = 1; OVER_LIMIT = 2; }
      message DescriptorStatus {
        Code code = 1; RateLimit current_limit = 2; uint32 limit_remaining = 3; ...
      }
      Code overall_code = 1;
      repeated DescriptorStatus statuses = 2;    // one per request descriptor, same order
      ...                                        // headers, raw_body, metadata: not sent
    }

Protobuf encoding used: a key is varint(field_number << 3 | wire_type); wire type 0 is a
varint, 2 is length-delimited (varint length, then bytes: strings and sub-messages);
unknown fields of wire types 0, 1, 2 and 5 are skipped.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

SERVICE = "envoy.service.ratelimit.v3.RateLimitService"
METHOD = "ShouldRateLimit"
CODE_OK, CODE_OVER_LIMIT = 1, 2
CODE_NAMES = {CODE_OK: "OK", CODE_OVER_LIMIT: "OVER_LIMIT"}


# ----------------------------------------------------------------------------- protobuf


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def fields(buf: bytes):
    """(field_number, wire_type, value) of a message: value is an int (wire types 0, 1, 5)
    or bytes (wire type 2)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated length-delimited field")
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def decode_descriptor(buf: bytes) -> dict:
    entries: list[list[str]] = []
    hits_addend = None
    for number, wire, value in fields(buf):
        if number == 1 and wire == 2:
            key = val = ""
            for n, w, v in fields(value):
                if n == 1 and w == 2:
                    key = v.decode("utf-8", "replace")
                elif n == 2 and w == 2:
                    val = v.decode("utf-8", "replace")
            entries.append([key, val])
        elif number == 3 and wire == 2:
            hits_addend = 0  # a present UInt64Value wrapper with no field means 0
            for n, w, v in fields(value):
                if n == 1 and w == 0:
                    hits_addend = v
    return {"entries": entries, "hits_addend": hits_addend}


def decode_request(buf: bytes) -> dict:
    req = {"domain": "", "descriptors": [], "hits_addend": 0}
    for number, wire, value in fields(buf):
        if number == 1 and wire == 2:
            req["domain"] = value.decode("utf-8", "replace")
        elif number == 2 and wire == 2:
            req["descriptors"].append(decode_descriptor(value))
        elif number == 3 and wire == 0:
            req["hits_addend"] = value
    return req


def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _enc_field(number: int, wire: int, payload) -> bytes:
    key = _enc_varint(number << 3 | wire)
    if wire == 0:
        return key + _enc_varint(payload)
    return key + _enc_varint(len(payload)) + payload


def encode_response(overall: int, statuses: list[tuple[int, int]]) -> bytes:
    """RateLimitResponse{overall_code, statuses: [(code, limit_remaining)]}."""
    out = _enc_field(1, 0, overall)
    for code, remaining in statuses:
        status = _enc_field(1, 0, code)
        if remaining:
            status += _enc_field(3, 0, remaining)
        out += _enc_field(2, 2, status)
    return out


# ----------------------------------------------------------------------------- service


class FakeRls:
    def __init__(self, limits: dict[tuple[str, str], int]):
        self.limits = limits
        self.used = {k: 0 for k in limits}
        self.records: list[dict] = []
        self.lock = threading.Lock()

    def should_rate_limit(self, raw: bytes, context) -> bytes:
        try:
            req = decode_request(raw)
        except ValueError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad RateLimitRequest: {err}")
        statuses = []
        with self.lock:
            for desc in req["descriptors"]:
                if desc["hits_addend"] is not None:
                    hits = desc["hits_addend"]
                else:
                    hits = req["hits_addend"] or 1
                desc["hits"] = hits
                code, remaining = CODE_OK, 0
                key = descriptor_key(desc["entries"])
                if key in self.limits:
                    self.used[key] += hits
                    left = self.limits[key] - self.used[key]
                    code = CODE_OVER_LIMIT if left < 0 else CODE_OK
                    remaining = max(left, 0)
                statuses.append((code, remaining))
            overall = CODE_OVER_LIMIT if any(c == CODE_OVER_LIMIT for c, _ in statuses) else CODE_OK
            req["overall_code"] = CODE_NAMES[overall]
            req["time"] = time.time()
            self.records.append(req)
        return encode_response(overall, statuses)

    def snapshot(self) -> list[dict]:
        with self.lock:
            return json.loads(json.dumps(self.records))

    def counters(self) -> dict:
        with self.lock:
            return {k: {"limit": self.limits[k], "used": self.used[k]} for k in self.limits}

    def set_limits(self, limits: dict[str, int]) -> None:
        with self.lock:
            self.limits = dict(limits)
            self.used = {k: 0 for k in limits}


def descriptor_key(entries) -> str:
    """[(k1, v1), (k2, v2)] -> "k1=v1,k2=v2", the key of --limit and /counters."""
    return ",".join(f"{k}={v}" for k, v in entries)


def http_handler(rls: FakeRls):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # quiet
            pass

        def _send(self, status: int, body, ctype="application/json"):
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                self._send(200, "ok", "text/plain")
            elif self.path == "/requests":
                self._send(200, rls.snapshot())
            elif self.path == "/counters":
                self._send(200, rls.counters())
            else:
                self._send(404, {"error": "not found"})

        def do_DELETE(self):
            if self.path == "/requests":
                with rls.lock:
                    rls.records.clear()
                self._send(200, {"cleared": True})
            elif self.path == "/counters":
                with rls.lock:
                    rls.used = {k: 0 for k in rls.limits}
                self._send(200, {"cleared": True})
            else:
                self._send(404, {"error": "not found"})

        def do_PUT(self):
            if self.path != "/limits":
                self._send(404, {"error": "not found"})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                limits = {str(k): int(v) for k, v in body.items()}
            except (ValueError, AttributeError) as err:
                self._send(400, {"error": str(err)})
                return
            rls.set_limits(limits)
            self._send(200, rls.counters())

    return Handler


def parse_limit(text: str) -> tuple[str, int]:
    """`K1=V1,K2=V2:N` -> ("K1=V1,K2=V2", N)."""
    entries, _, n = text.rpartition(":")
    if not n.isdigit() or not entries or any("=" not in e for e in entries.split(",")):
        raise argparse.ArgumentTypeError(f"--limit wants KEY=VALUE[,KEY=VALUE...]:N, got {text!r}")
    return entries, int(n)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grpc-port", type=int, required=True)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--limit", type=parse_limit, action="append", default=[],
                    help="KEY=VALUE[,KEY=VALUE...]:N, e.g. consumer=alice:100 (repeatable)")
    args = ap.parse_args(argv)

    rls = FakeRls(dict(args.limit))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        # No (de)serializers: the handler gets and returns the raw protobuf bytes.
        METHOD: grpc.unary_unary_rpc_method_handler(rls.should_rate_limit),
    }),))
    if server.add_insecure_port(f"127.0.0.1:{args.grpc_port}") == 0:
        print(f"cannot bind gRPC port {args.grpc_port}", file=sys.stderr)
        return 1
    server.start()
    httpd = ThreadingHTTPServer(("127.0.0.1", args.http_port), http_handler(rls))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print(f"fake RLS: gRPC 127.0.0.1:{args.grpc_port}, HTTP 127.0.0.1:{args.http_port}, "
          f"limits {args.limit}", flush=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    httpd.shutdown()
    server.stop(grace=1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
