"""A raw HTTP/2 client (h2c, prior knowledge) for what the SDKs cannot send: request bodies split
across many DATA frames and requests that end with a trailers frame instead of END_STREAM on the
last DATA frame. Envoy's listener (codec AUTO) accepts it like any h2c client.

    resp = h2_request(port, "POST", "/v1/chat/completions", {"content-type": "application/json"},
                      body, chunk=7, trailers={"x-end": "1"})
    resp.status, resp.headers, resp.body, resp.json()
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events


@dataclass
class H2Response:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    trailers: dict[str, str] = field(default_factory=dict)
    reset: bool = False

    def json(self):
        return json.loads(self.body)


def _split(body: bytes, chunk: int | None) -> list[bytes]:
    if not body:
        return []
    if not chunk:
        return [body]
    return [body[i:i + chunk] for i in range(0, len(body), chunk)]


def h2_request(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"",
               *, chunk: int | None = None, trailers: dict[str, str] | None = None,
               timeout: float = 15.0, host: str = "127.0.0.1") -> H2Response:
    """One request on a fresh h2c connection. `chunk` splits the body into DATA frames of that
    size (each flushed on its own); `trailers` ends the stream with a HEADERS frame instead of
    END_STREAM on the last DATA frame."""
    sock = socket.create_connection((host, port), timeout=timeout)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
    conn.increment_flow_control_window(1 << 24)
    sock.sendall(conn.data_to_send())
    stream_id = conn.get_next_available_stream_id()
    request_headers = [(":method", method), (":path", path), (":scheme", "http"),
                       (":authority", f"{host}:{port}")] + [(k.lower(), v) for k, v in headers.items()]
    frames = _split(body, chunk)
    conn.send_headers(stream_id, request_headers, end_stream=not frames and not trailers)
    sock.sendall(conn.data_to_send())
    response = H2Response()
    for i, frame in enumerate(frames):
        last = i == len(frames) - 1
        _send_data(conn, sock, stream_id, frame, end_stream=last and not trailers, response=response)
    if trailers:
        conn.send_headers(stream_id, [(k.lower(), v) for k, v in trailers.items()], end_stream=True)
        sock.sendall(conn.data_to_send())
    _read_until_closed(conn, sock, stream_id, response, time.monotonic() + timeout)
    sock.close()
    return response


def _send_data(conn, sock, stream_id, data: bytes, *, end_stream: bool, response: H2Response) -> None:
    while data:
        window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
        if window <= 0:
            _pump(conn, sock, stream_id, response)
            continue
        piece, data = data[:window], data[window:]
        conn.send_data(stream_id, piece, end_stream=end_stream and not data)
        sock.sendall(conn.data_to_send())
        if response.status or response.reset:
            return  # answered early (a local reply): stop sending


def _pump(conn, sock, stream_id, response: H2Response) -> bool:
    """Reads one batch of frames; True once the stream has ended."""
    data = sock.recv(65536)
    if not data:
        response.reset = response.reset or not response.status
        return True
    done = False
    for event in conn.receive_data(data):
        if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
            for k, v in event.headers:
                if k == ":status":
                    response.status = int(v)
                else:
                    response.headers[k] = v
        elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
            response.body += event.data
            conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
        elif isinstance(event, h2.events.TrailersReceived) and event.stream_id == stream_id:
            response.trailers.update(dict(event.headers))
        elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
            done = True
        elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
            response.reset = True
            done = True
        elif isinstance(event, h2.events.ConnectionTerminated):
            done = True
    sock.sendall(conn.data_to_send())
    return done


def _read_until_closed(conn, sock, stream_id, response: H2Response, deadline: float) -> None:
    while time.monotonic() < deadline:
        if _pump(conn, sock, stream_id, response):
            return
    raise TimeoutError(f"no complete HTTP/2 response on stream {stream_id} before the deadline")
