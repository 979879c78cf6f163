"""Provider dialects of the fake provider beyond OpenAI, one module per provider.

Each module in this package defines

    route(method: str, path: str) -> Callable[[Handler, str, str, bytes], None] | None

returning the endpoint function for requests it serves (or None). The endpoint gets the
fake's request handler (use ``h.send_json(status, obj)``, ``h.send_bytes(status, body,
content_type)``, ``h.start_stream(content_type)`` / ``h.write_chunk(bytes)`` /
``h.end_stream()``, ``h.headers``, ``h.int_header(name)``), the path, the query string and
the raw body; it validates the request like the real API and answers in that API's own
shape, including errors. Requests are recorded before dispatch.

Modules are discovered by file name, so adding a dialect is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil

DIALECTS = [
    importlib.import_module(f"{__name__}.{info.name}")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name)
    if not info.name.startswith("_")
]


def route(method: str, path: str):
    for dialect in DIALECTS:
        endpoint = dialect.route(method, path)
        if endpoint is not None:
            return endpoint
    return None
