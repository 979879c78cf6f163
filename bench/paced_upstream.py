"""A paced SSE upstream for the time-to-first-byte test (stdlib only).

Every POST, whatever the path, gets `200 text/event-stream` with the headers at once, then the
events of streams.openai_stream(N), the first after --first-ms and each next one --gap-ms later,
one HTTP/1.1 chunk per event. Keep-alive; request bodies with Content-Length or chunked.

    python bench/paced_upstream.py --port 18300 --events 20 --first-ms 5 --gap-ms 2
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from streams import openai_stream  # noqa: E402

HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
        b"transfer-encoding: chunked\r\n\r\n")


async def read_request(reader: asyncio.StreamReader) -> bool:
    """Reads one request (headers and body). False at end of connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            await reader.readexactly(size + 2)  # data and CRLF (the last chunk: just CRLF)
            if size == 0:
                break
    return True


async def handle(reader, writer, events, first_s, gap_s):
    try:
        while await read_request(reader):
            writer.write(HEAD)
            await writer.drain()
            for i, event in enumerate(events):
                await asyncio.sleep(first_s if i == 0 else gap_s)
                writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--first-ms", type=float, default=5.0)
    ap.add_argument("--gap-ms", type=float, default=2.0)
    args = ap.parse_args()
    events = openai_stream(args.events)
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, events, args.first_ms / 1000, args.gap_ms / 1000),
        "127.0.0.1", args.port)
    print(f"paced upstream on 127.0.0.1:{args.port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
