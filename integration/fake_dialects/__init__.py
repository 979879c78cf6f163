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
import json
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


def request_problem(path: str, raw: bytes) -> str | None:
    """What the dialect's API would refuse in a chat request to `path` (its validator's
    message), or None; for replayed answers, which skip the endpoints (fake_provider.py)."""
    from . import anthropic, bedrock, gemini
    checks = [(anthropic.route("POST", path) is anthropic.messages_endpoint, anthropic.validate),
              (gemini.PATH_RE.match(path) is not None, gemini.validate),
              (bedrock.PATH_RE.match(path) is not None, bedrock.validate)]
    for applies, validate in checks:
        if applies:
            try:
                validate(json.loads(raw))
            except (anthropic.AnthropicError, gemini.GeminiError, bedrock.BedrockError) as err:
                return str(err)
            except ValueError as err:
                return f"not JSON: {err}"
    return None
