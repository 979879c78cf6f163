"""Fake AWS Bedrock Runtime: Converse and ConverseStream, and InvokeModel for embeddings.

    POST /model/{modelId}/converse          JSON
    POST /model/{modelId}/converse-stream   application/vnd.amazon.eventstream
    POST /model/{modelId}/invoke            InvokeModel: Titan Text Embeddings and Cohere Embed

InvokeModel (same authentication and ``x-fake-status``), by model id (a base id, an
inference profile ``us.cohere.embed-v4:0`` or an ARN ending in one), validated like the model
parameter pages of the Bedrock user guide (400 ValidationException; unknown keys:
"extraneous key [k] is not permitted"):
  amazon.titan-embed-text-v2:0   ``inputText`` (non-empty string), ``dimensions`` 256|512|1024,
                                 ``normalize``, ``embeddingTypes`` -> ``{"embedding",
                                 "inputTextTokenCount", "embeddingsByType": {"float"}}``
  amazon.titan-embed-text-v1     ``inputText`` only -> ``{"embedding", "inputTextTokenCount"}``
  cohere.embed-*-v3              ``texts`` (1-96 strings of at most 2048 characters),
                                 ``input_type`` (required: search_document, search_query,
                                 classification, clustering), ``truncate``, ``embedding_types``
                                 -> ``{"embeddings": [[...]], "id", "response_type":
                                 "embeddings_floats", "texts"}``
  cohere.embed-v4:0              as v3 plus ``output_dimension`` 256|512|1024|1536 ->
                                 ``{"embeddings": {"float": [[...]]}, "response_type":
                                 "embeddings_by_type", ...}``
  any other model                400 "Malformed input request" (as a chat model given an
                                 embeddings body)
Vectors: Titan v2 ``dimensions`` (default 1024), v1 1536, Cohere v3 1024, v4
``output_dimension`` (default 1536), from SHA-256 of the text (integration/fake_dialects/_vectors.py).
Tokens = words of the text(s); every answer has ``X-Amzn-Bedrock-Input-Token-Count`` (as
Bedrock's InvokeModel answers have), Cohere's body has no count (Bedrock's has none either).

``modelId`` is one percent-encoded path segment (ARNs arrive as ``arn%3Aaws%3A...%2F...``).

Authentication (checked after ``x-fake-status``): SigV4, the only Bedrock auth the gateway
has. ``Authorization: AWS4-HMAC-SHA256 Credential=<akid>/<date>/<region>/bedrock/
    aws4_request, SignedHeaders=..., Signature=...`` plus ``x-amz-date``. The fake knows the
    secret (env ``FAKE_AWS_SECRET``, default ``fake-secret``; any access key id) and verifies
    the signature fully, like a non-S3 AWS service: the payload hash is the SHA-256 of the
    body it received, whatever ``x-amz-content-sha256`` says, so a request signed over
    ``UNSIGNED-PAYLOAD`` fails (Bedrock Runtime does not model unsigned payloads; see
    src/llm/bedrock/mod.rs). The canonical URI is the received path encoded a second time,
    segment by segment (non-S3 rule). ``host`` and ``x-amz-date`` must be signed.
  Failures: 403 ``{"message": ...}`` with ``x-amzn-ErrorType`` MissingAuthenticationTokenException,
  IncompleteSignatureException or InvalidSignatureException. integration/test_fakes.py checks
  that the Rust signer's golden request verifies and a tampered one does not.

Validation (400 ValidationException, ``{"message": ...}``), like the real API as far as we
know it: body a JSON object with only known top-level members; ``messages`` a non-empty list;
roles ``user``/``assistant``, starting with ``user`` and alternating; documents with a known
format, a valid name and base64 bytes or text; each message a
non-empty ``content`` list of blocks with exactly one known member; text non-blank; images
with format png|jpeg|gif|webp and base64 ``source.bytes``; ``toolUse`` only in assistant
turns (toolUseId, name, object input); ``toolResult`` only in user turns, its id matching an
earlier toolUse, status success|error; tool blocks need ``toolConfig``; ``system`` blocks
text/cachePoint/guardContent; ``inferenceConfig`` numeric types; ``toolConfig.tools[]``
toolSpec with name and ``inputSchema.json``; ``toolChoice`` exactly one of auto/any/tool
(tool naming a defined tool).

Deterministic content (same conventions as the OpenAI fake):
  reply         = "echo: " + text of the last user message (its text blocks joined by one
                  space); ``x-fake-words: N`` -> "w1 ... wN".
  x-fake-tool-call: NAME -> the answer is one toolUse {toolUseId: "tooluse_fake_<n>", name,
                  input: {"query": <last user text>}} with stopReason "tool_use".
  inputTokens   = words in all system and message texts + 2 * number of messages, minus the
                  cache counts below (Bedrock's inputTokens excludes cache reads and writes).
  outputTokens  = words in the reply (tool call: words in the query + 1).
  totalTokens   = inputTokens + outputTokens + cacheRead + cacheWrite.
  x-fake-cache-read: N / x-fake-cache-write: M -> cacheReadInputTokens / cacheWriteInputTokens
  (x-fake-cache-write-1h: K of them with the 1-hour TTL); writes come with ``cacheDetails``
  ([{inputTokens, ttl: "1h"|"5m"}], 1h first).
  Without those headers, ``cachePoint`` blocks (toolConfig.tools, system, messages; shape
  ``{"type": "default", "ttl"?: "5m"|"1h"}``) work like Bedrock's prompt cache, minus the
  minimum prefix length: the prefix before each point (tools, system, messages in that order)
  is remembered per model; a request reads the longest remembered prefix it starts with, ending
  at any block boundary up to its last point (Bedrock and Anthropic look back for hits before a
  breakpoint), cacheReadInputTokens = its tokens, and writes the rest up to its last point
  (cacheWriteInputTokens; the tokens each point closes take its TTL, in cacheDetails). Tokens of
  a prefix: its words plus 2 per message begun.

Streaming: messageStart, (text) one contentBlockDelta per word piece (they concatenate to the
reply) or (tool) contentBlockStart + two input fragments, contentBlockStop, messageStop,
metadata {usage, metrics}. Every payload has Bedrock's ``p`` padding field.
``x-fake-chunk-delay-ms`` sleeps between frames. Recorded streams (reasoning, exceptions, cut
frames) are replayed from tests/fixtures/bedrock/*.eventstream (``x-fake-replay``, see
fake_provider.py), which make_eventstreams.py builds with ``encode_message`` below.

Errors: ``x-fake-status: S`` answers S with the matching exception name in
``x-amzn-ErrorType`` and ``{"message": ...}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import os
import re
import struct
import time
import zlib
from urllib.parse import unquote

from ._vectors import fake_vector

PATH_RE = re.compile(r"^/model/(?P<model>[^/]+)/(?P<op>converse|converse-stream)$")
EVENT_STREAM = "application/vnd.amazon.eventstream"
IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
TOP_LEVEL = {"messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig",
             "additionalModelRequestFields", "promptVariables",
             "additionalModelResponseFieldPaths", "requestMetadata", "performanceConfig",
             "serviceTier", "outputConfig"}
BLOCK_KINDS = {"text", "image", "document", "video", "audio", "toolUse", "toolResult",
               "guardContent", "cachePoint", "reasoningContent", "citationsContent",
               "searchResult"}
STATUS_ERRORS = {
    400: "ValidationException", 403: "AccessDeniedException",
    404: "ResourceNotFoundException", 408: "ModelTimeoutException",
    424: "ModelErrorException", 429: "ThrottlingException",
    500: "InternalServerException", 503: "ServiceUnavailableException",
}
_ids = itertools.count(1)

# ----------------------------------------------------------------------------- event stream


def encode_header(name: str, value: str) -> bytes:
    """One header of string type (7), the only type Bedrock's event headers use."""
    raw, data = name.encode("utf-8"), value.encode("utf-8")
    return struct.pack(">B", len(raw)) + raw + struct.pack(">BH", 7, len(data)) + data


def encode_message(headers: list, payload: bytes) -> bytes:
    """An ``application/vnd.amazon.eventstream`` message: prelude (total length, headers
    length, CRC32 of both), headers, payload, CRC32 of everything before it."""
    hbytes = b"".join(encode_header(n, v) for n, v in headers)
    total = 16 + len(hbytes) + len(payload)
    prelude = struct.pack(">II", total, len(hbytes))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + hbytes + payload
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def event_frame(event_type: str, payload: dict) -> bytes:
    return encode_message(
        [(":event-type", event_type), (":content-type", "application/json"),
         (":message-type", "event")],
        json.dumps(payload, separators=(",", ":")).encode("utf-8"),
    )


# ----------------------------------------------------------------------------- errors


class BedrockError(Exception):
    def __init__(self, status: int, error_type: str, message: str):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def invalid(message: str) -> BedrockError:
    return BedrockError(400, "ValidationException", message)


def send_error(h, err: BedrockError):
    h.send_json(err.status, {"message": err.message},
                {"x-amzn-ErrorType": f"{err.error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                 "x-amzn-RequestId": "fake-request-id"})


# ----------------------------------------------------------------------------- SigV4


def _uri_encode(s: str, keep_slash: bool) -> str:
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        if c.isascii() and (c.isalnum() or c in "-_.~" or (keep_slash and c == "/")):
            out.append(c)
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def _canonical_query(query: str) -> str:
    params = []
    for part in query.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        params.append((_uri_encode(unquote(k), False), _uri_encode(unquote(v), False)))
    return "&".join(f"{k}={v}" for k, v in sorted(params))


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?Signature=(?P<sig>[0-9a-f]{64})$")


def check_auth(h, path: str, query: str, raw: bytes):
    auth = h.headers.get("Authorization", "")
    if not auth:
        raise BedrockError(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    m = AUTH_RE.match(auth)
    amz_date = h.headers.get("x-amz-date", "")
    if not m or not amz_date:
        raise BedrockError(403, "IncompleteSignatureException",
                           "Authorization header requires 'Credential', 'Signature' and "
                           "'SignedHeaders' parameters, and an x-amz-date header.")
    signed = m["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        raise BedrockError(403, "IncompleteSignatureException", "host and x-amz-date must be signed.")
    if m["service"] != "bedrock":
        raise BedrockError(403, "InvalidSignatureException",
                           f"Credential should be scoped to correct service: 'bedrock'.")
    if m["date"] != amz_date[:8]:
        raise BedrockError(403, "InvalidSignatureException",
                           "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.")
    lines = []
    for name in signed:
        values = h.headers.get_all(name) or []
        if not values:
            raise BedrockError(403, "InvalidSignatureException", f"Signed header {name} is missing.")
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}\n")
    creq = "\n".join([h.command, _uri_encode(path, True), _canonical_query(query), "".join(lines),
                      m["signed"], hashlib.sha256(raw).hexdigest()])
    scope = f"{m['date']}/{m['region']}/{m['service']}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(creq.encode("utf-8")).hexdigest()])
    secret = os.environ.get("FAKE_AWS_SECRET", "fake-secret")
    key = _hmac(("AWS4" + secret).encode("utf-8"), m["date"])
    for part in (m["region"], m["service"], "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, sts.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, m["sig"]):
        raise BedrockError(403, "InvalidSignatureException",
                           "The request signature we calculated does not match the signature you "
                           "provided. Check your AWS Secret Access Key and signing method. Consult "
                           "the service documentation for details.")


# ----------------------------------------------------------------------------- validation


_prompt_cache: dict[str, int] = {}


DOCUMENT_FORMATS = ("pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md")
DOCUMENT_NAME = re.compile(r"[A-Za-z0-9()\[\]-]+( [A-Za-z0-9()\[\]-]+)*")


def _check_document(doc, where: str):
    """DocumentBlock: format, a name of letters, digits, single spaces, hyphens, parentheses and
    square brackets (1-200), a source of base64 bytes or text."""
    if not isinstance(doc, dict) or doc.get("format") not in DOCUMENT_FORMATS:
        raise invalid(f"{where}.document.format must be one of {', '.join(DOCUMENT_FORMATS)}.")
    name = doc.get("name")
    if not isinstance(name, str) or len(name) > 200 or not DOCUMENT_NAME.fullmatch(name):
        raise invalid(f"{where}.document.name is missing or has characters a document name cannot have.")
    src = doc.get("source")
    if not isinstance(src, dict) or len(src) != 1 or next(iter(src)) not in ("bytes", "text", "s3Location"):
        raise invalid(f"{where}.document.source must hold exactly one of bytes, text, s3Location.")
    if "bytes" in src:
        try:
            base64.b64decode(src["bytes"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise invalid(f"{where}.document.source.bytes is not valid base64.")


def _check_cache_point(value, where: str):
    if not isinstance(value, dict) or value.get("type") != "default" or set(value) - {"type", "ttl"}:
        raise invalid(f"{where}.cachePoint must be {{\"type\": \"default\"}} with an optional ttl.")
    if "ttl" in value and value["ttl"] not in ("5m", "1h"):
        raise invalid(f"{where}.cachePoint.ttl must be 5m or 1h.")


def _cache_points(model_id: str, body: dict) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(key of the prefix, its tokens) at every cachePoint and at every block boundary, in
    prompt order."""
    points, boundaries, prefix, tokens = [], [], [], 0

    def key() -> str:
        return hashlib.sha256(json.dumps([model_id, prefix], sort_keys=True).encode()).hexdigest()

    def visit(item):
        nonlocal tokens
        if isinstance(item, dict) and "cachePoint" in item:
            points.append((key(), tokens, item["cachePoint"].get("ttl", "5m")))
            return
        boundaries.append((key(), tokens))
        prefix.append(item)
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            tokens += _words(item["text"])

    for tool in (body.get("toolConfig") or {}).get("tools", []):
        visit(tool)
    for block in body.get("system", []):
        visit(block)
    for m in body["messages"]:
        boundaries.append((key(), tokens))
        prefix.append({"role": m["role"]})
        tokens += 2
        for block in m["content"]:
            visit(block)
    boundaries.append((key(), tokens))
    return points, boundaries


def _cache_usage(model_id: str, body: dict) -> tuple[int, int, int]:
    """(read, write, of which 1-hour) of the fake prompt cache for this request; remembers its
    prefixes. The tokens a cache point closes (since the previous point or the read prefix)
    are written with that point's TTL, as Anthropic bills mixed TTLs."""
    points, boundaries = _cache_points(model_id, body)
    if not points:
        return 0, 0, 0
    last = points[-1][1]
    read = max((tokens for key, tokens in boundaries + [p[:2] for p in points]
                if key in _prompt_cache and tokens <= last), default=0)
    write = max(points[-1][1] - read, 0)
    write_1h, start = 0, read
    for _, tokens, ttl in points:
        if tokens > start:
            write_1h += tokens - start if ttl == "1h" else 0
            start = tokens
    for key, tokens, _ in points:
        _prompt_cache[key] = tokens
    return read, write, write_1h


def _text_of(message: dict) -> str:
    return " ".join(b["text"] for b in message.get("content", [])
                    if isinstance(b, dict) and isinstance(b.get("text"), str))


def _words(text: str) -> int:
    return len(text.split())


def _check_image(img, where: str):
    if not isinstance(img, dict) or img.get("format") not in IMAGE_FORMATS:
        raise invalid(f"{where}.image.format must be one of {', '.join(IMAGE_FORMATS)}.")
    src = img.get("source")
    if not isinstance(src, dict) or not isinstance(src.get("bytes"), str):
        raise invalid(f"{where}.image.source must hold base64 bytes.")
    try:
        base64.b64decode(src["bytes"], validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{where}.image.source.bytes is not valid base64.")


def validate(body) -> None:
    if not isinstance(body, dict):
        raise BedrockError(400, "SerializationException", "Request body must be a JSON object.")
    unknown = sorted(set(body) - TOP_LEVEL)
    if unknown:
        raise invalid(f"Unknown field(s) in request: {', '.join(unknown)}.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("The messages field is required and must be a non-empty list.")
    tool_ids: set = set()
    has_tool_blocks = False
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise invalid(f"messages.{i}.role must be user or assistant.")
        if i == 0 and m["role"] != "user":
            raise invalid("A conversation must start with a user message. Try again with a "
                          "conversation that starts with a user message.")
        if i > 0 and m["role"] == messages[i - 1].get("role"):
            raise invalid("A conversation must alternate between user and assistant roles. "
                          "Make sure the conversation alternates between user and assistant "
                          "roles and try again.")
        content = m.get("content")
        if not isinstance(content, list) or not content:
            raise invalid(f"messages.{i}.content must be a non-empty list.")
        for j, block in enumerate(content):
            where = f"messages.{i}.content.{j}"
            if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in BLOCK_KINDS:
                raise invalid(f"{where} must have exactly one known member.")
            kind, value = next(iter(block.items()))
            if kind == "text" and (not isinstance(value, str) or not value.strip()):
                raise invalid("The text field in the ContentBlock object at "
                              f"{where} is blank. Add text to the text field, and try again.")
            if kind == "image":
                _check_image(value, where)
            if kind == "cachePoint":
                _check_cache_point(value, where)
            if kind == "document":
                _check_document(value, where)
            if kind == "toolUse":
                has_tool_blocks = True
                if m["role"] != "assistant":
                    raise invalid(f"{where}: toolUse is only allowed in assistant messages.")
                if not (isinstance(value, dict) and isinstance(value.get("toolUseId"), str)
                        and isinstance(value.get("name"), str) and isinstance(value.get("input"), dict)):
                    raise invalid(f"{where}.toolUse needs toolUseId, name and an object input.")
                tool_ids.add(value["toolUseId"])
            if kind == "toolResult":
                has_tool_blocks = True
                if m["role"] != "user":
                    raise invalid(f"{where}: toolResult is only allowed in user messages.")
                if not isinstance(value, dict) or value.get("toolUseId") not in tool_ids:
                    raise invalid(f"{where}.toolResult.toolUseId does not match any toolUse in "
                                  "the previous turns.")
                if value.get("status", "success") not in ("success", "error"):
                    raise invalid(f"{where}.toolResult.status must be success or error.")
                if not isinstance(value.get("content"), list):
                    raise invalid(f"{where}.toolResult.content must be a list.")
                for k, c in enumerate(value["content"]):
                    if not isinstance(c, dict) or len(c) != 1 or next(iter(c)) not in (
                            "text", "json", "image", "document", "video"):
                        raise invalid(f"{where}.toolResult.content.{k} must have exactly one known member.")
                    if "image" in c:
                        _check_image(c["image"], f"{where}.toolResult.content.{k}")
            if kind == "reasoningContent" and m["role"] != "assistant":
                raise invalid(f"{where}: reasoningContent is only allowed in assistant messages.")
    system = body.get("system", [])
    if not isinstance(system, list) or any(
            not isinstance(b, dict) or len(b) != 1 or next(iter(b)) not in ("text", "cachePoint", "guardContent")
            for b in system):
        raise invalid("system must be a list of text, cachePoint or guardContent blocks.")
    for k, b in enumerate(system):
        if "cachePoint" in b:
            _check_cache_point(b["cachePoint"], f"system.{k}")
    inference = body.get("inferenceConfig", {})
    if not isinstance(inference, dict):
        raise invalid("inferenceConfig must be an object.")
    for name, types in (("maxTokens", int), ("temperature", (int, float)), ("topP", (int, float))):
        if name in inference and (isinstance(inference[name], bool) or not isinstance(inference[name], types)):
            raise invalid(f"inferenceConfig.{name} has the wrong type.")
    if "stopSequences" in inference and not (isinstance(inference["stopSequences"], list) and all(
            isinstance(s, str) for s in inference["stopSequences"])):
        raise invalid("inferenceConfig.stopSequences must be a list of strings.")
    tool_config = body.get("toolConfig")
    if has_tool_blocks and tool_config is None:
        raise invalid("The toolConfig field must be defined when using toolUse and toolResult "
                      "content blocks.")
    if tool_config is not None:
        tools = tool_config.get("tools") if isinstance(tool_config, dict) else None
        if not isinstance(tools, list) or not tools:
            raise invalid("toolConfig.tools must be a non-empty list.")
        names = []
        for k, t in enumerate(tools):
            if isinstance(t, dict) and list(t) == ["cachePoint"]:
                _check_cache_point(t["cachePoint"], f"toolConfig.tools.{k}")
                continue
            spec = t.get("toolSpec") if isinstance(t, dict) else None
            if not (isinstance(spec, dict) and isinstance(spec.get("name"), str)
                    and re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", spec["name"])
                    and isinstance(spec.get("inputSchema"), dict)
                    and isinstance(spec["inputSchema"].get("json"), dict)):
                raise invalid(f"toolConfig.tools.{k}.toolSpec needs a valid name and inputSchema.json.")
            names.append(spec["name"])
        choice = tool_config.get("toolChoice")
        if choice is not None:
            if not isinstance(choice, dict) or len(choice) != 1 or next(iter(choice)) not in ("auto", "any", "tool"):
                raise invalid("toolConfig.toolChoice must have exactly one of auto, any, tool.")
            if "tool" in choice and (not isinstance(choice["tool"], dict) or choice["tool"].get("name") not in names):
                raise invalid("toolConfig.toolChoice.tool.name must name a defined tool.")


# ----------------------------------------------------------------------------- endpoint


def route(method: str, path: str):
    if method == "POST" and PATH_RE.match(path):
        return converse
    if method == "POST" and INVOKE_RE.match(path):
        return invoke
    return None


INVOKE_RE = re.compile(r"^/model/(?P<model>[^/]+)/invoke$")
COHERE_INPUT_TYPES = {"search_document", "search_query", "classification", "clustering"}


def _extraneous(body: dict, allowed: set) -> None:
    for key in body:
        if key not in allowed:
            raise BedrockError(400, "ValidationException",
                               f"Malformed input request: #: extraneous key [{key}] is not permitted, please reformat your input and try again.")


def _invalid(message: str) -> BedrockError:
    return BedrockError(400, "ValidationException", f"Malformed input request: {message}, please reformat your input and try again.")


def _titan(body: dict, v2: bool) -> tuple[dict, int]:
    _extraneous(body, {"inputText", "dimensions", "normalize", "embeddingTypes"} if v2 else {"inputText"})
    text = body.get("inputText")
    if not isinstance(text, str) or not text:
        raise _invalid("#/inputText: expected minLength: 1")
    size = body.get("dimensions", 1024) if v2 else 1536
    if size not in (256, 512, 1024):
        raise _invalid(f"#/dimensions: {size} is not a valid enum value")
    vec = fake_vector(text, size)
    tokens = _words(text)
    answer = {"embedding": vec, "inputTextTokenCount": tokens}
    if v2:
        answer["embeddingsByType"] = {"float": vec}
    return answer, tokens


def _cohere(body: dict, v4: bool) -> tuple[dict, int]:
    allowed = {"texts", "images", "input_type", "truncate", "embedding_types"}
    if v4:
        allowed |= {"inputs", "output_dimension", "max_tokens"}
    _extraneous(body, allowed)
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise _invalid("#/texts: expected an array of 1 to 96 strings")
    if len(texts) > 96:
        raise _invalid(f"#/texts: expected maxItems: 96, actual: {len(texts)}")
    if any(len(t) > 2048 for t in texts) and not v4:
        raise _invalid("#/texts: expected maxLength: 2048")
    if body.get("input_type") not in COHERE_INPUT_TYPES:
        raise _invalid("#: required key [input_type] not found" if "input_type" not in body
                       else f"#/input_type: {body['input_type']} is not a valid enum value")
    size = body.get("output_dimension", 1536) if v4 else 1024
    if size not in (256, 512, 1024, 1536):
        raise _invalid(f"#/output_dimension: {size} is not a valid enum value")
    vectors = [fake_vector(t, size) for t in texts]
    answer = {"id": f"fake-embed-{next(_ids)}", "texts": [t.lower() for t in texts]}
    if v4:
        answer.update(embeddings={"float": vectors}, response_type="embeddings_by_type")
    else:
        answer.update(embeddings=vectors, response_type="embeddings_floats")
    return answer, sum(_words(t) for t in texts)


def invoke(h, path: str, query: str, raw: bytes):
    model_id = unquote(INVOKE_RE.match(path)["model"])
    base = model_id.rsplit("/", 1)[-1]
    try:
        status = h.int_header("x-fake-status")
        if status is not None and 100 <= status <= 599:
            raise BedrockError(status, STATUS_ERRORS.get(status, "InternalServerException"),
                               f"Fake error {status} (x-fake-status).")
        check_auth(h, path, query, raw)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BedrockError(400, "SerializationException", "Request body is not valid JSON.")
        if not isinstance(body, dict):
            raise _invalid("#: expected type: JSONObject")
        if "amazon.titan-embed-text-" in base:
            answer, tokens = _titan(body, v2="titan-embed-text-v2" in base)
        elif "cohere.embed-" in base:
            answer, tokens = _cohere(body, v4="cohere.embed-v4" in base)
        else:
            raise BedrockError(400, "ValidationException", "Malformed input request, please reformat your input and try again.")
    except BedrockError as err:
        return send_error(h, err)
    h.send_json(200, answer, {"x-amzn-RequestId": "fake-request-id",
                              "X-Amzn-Bedrock-Input-Token-Count": str(tokens),
                              "X-Amzn-Bedrock-Output-Token-Count": "0",
                              "X-Amzn-Bedrock-Invocation-Latency": "42"})


def _usage(body: dict, output_tokens: int, h, model_id: str) -> dict:
    messages = body["messages"]
    total_in = sum(_words(_text_of(m)) for m in messages) + 2 * len(messages)
    total_in += sum(_words(b.get("text", "")) for b in body.get("system", []) if isinstance(b, dict))
    read = max(h.int_header("x-fake-cache-read") or 0, 0)
    write = max(h.int_header("x-fake-cache-write") or 0, 0)
    write_1h = min(max(h.int_header("x-fake-cache-write-1h") or 0, 0), write)
    if h.int_header("x-fake-cache-read") is None and h.int_header("x-fake-cache-write") is None:
        read, write, write_1h = _cache_usage(model_id, body)
    fresh = max(total_in - read - write, 0)
    usage = {"inputTokens": fresh, "outputTokens": output_tokens,
             "totalTokens": fresh + output_tokens + read + write}
    if read or write:
        usage["cacheReadInputTokens"] = read
        usage["cacheWriteInputTokens"] = write
    if write:
        # TokenUsage.cacheDetails: the writes by TTL, 1h before 5m, empty TTLs left out.
        details = [(write_1h, "1h"), (write - write_1h, "5m")]
        usage["cacheDetails"] = [{"inputTokens": n, "ttl": ttl} for n, ttl in details if n]
    return usage


def converse(h, path: str, query: str, raw: bytes):
    m = PATH_RE.match(path)
    model_id = unquote(m["model"])
    stream = m["op"] == "converse-stream"
    try:
        status = h.int_header("x-fake-status")
        if status is not None and 100 <= status <= 599:
            raise BedrockError(status, STATUS_ERRORS.get(status, "InternalServerException"),
                               f"Fake error {status} (x-fake-status).")
        check_auth(h, path, query, raw)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BedrockError(400, "SerializationException", "Request body is not valid JSON.")
        validate(body)
    except BedrockError as err:
        return send_error(h, err)

    last_user = ""
    for msg in body["messages"]:
        if msg["role"] == "user" and _text_of(msg):
            last_user = _text_of(msg)
    tool = h.headers.get("x-fake-tool-call")
    fake_words = h.int_header("x-fake-words")
    if tool:
        tool_input = {"query": last_user}
        tool_id = f"tooluse_fake_{next(_ids)}"
        output_tokens = _words(last_user) + 1
        reply = None
    else:
        reply = (" ".join(f"w{i}" for i in range(1, max(fake_words, 0) + 1))
                 if fake_words is not None else "echo: " + last_user)
        output_tokens = _words(reply)
    usage = _usage(body, output_tokens, h, model_id)
    stop = "tool_use" if tool else "end_turn"

    if not stream:
        block = ({"toolUse": {"toolUseId": tool_id, "name": tool, "input": tool_input}}
                 if tool else {"text": reply})
        return h.send_json(200, {
            "output": {"message": {"role": "assistant", "content": [block]}},
            "stopReason": stop,
            "usage": usage,
            "metrics": {"latencyMs": 42},
        }, {"x-amzn-RequestId": "fake-request-id"})

    pad = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    frames = [event_frame("messageStart", {"p": pad[:8], "role": "assistant"})]
    if tool:
        args = json.dumps(tool_input)
        cut = max(len(args) // 2, 1)
        frames.append(event_frame("contentBlockStart", {
            "contentBlockIndex": 0, "p": pad[:4],
            "start": {"toolUse": {"toolUseId": tool_id, "name": tool}}}))
        for piece in (args[:cut], args[cut:]):
            frames.append(event_frame("contentBlockDelta", {
                "contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}, "p": pad[:12]}))
    else:
        pieces = re.findall(r"\S+\s*", reply) or ([reply] if reply else [])
        lead = reply[: len(reply) - len(reply.lstrip())]
        if pieces and lead:
            pieces[0] = lead + pieces[0]
        for piece in pieces:
            frames.append(event_frame("contentBlockDelta", {
                "contentBlockIndex": 0, "delta": {"text": piece}, "p": pad[:len(piece) % 20 + 1]}))
    frames.append(event_frame("contentBlockStop", {"contentBlockIndex": 0, "p": pad[:6]}))
    frames.append(event_frame("messageStop", {"p": pad[:10], "stopReason": stop}))
    frames.append(event_frame("metadata", {"metrics": {"latencyMs": 42}, "p": pad[:3], "usage": usage}))

    delay = max(h.int_header("x-fake-chunk-delay-ms") or 0, 0) / 1000.0
    h.start_stream(EVENT_STREAM)
    for i, frame in enumerate(frames):
        if i and delay:
            time.sleep(delay)
        h.write_chunk(frame)
    h.end_stream()
