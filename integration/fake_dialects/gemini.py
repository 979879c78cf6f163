"""Google Gemini API (v1beta) dialect of the fake provider.

Endpoints (any prefix before ``/models/``, e.g. ``/v1beta/models/...``):

  POST <prefix>/models/{model}:generateContent         one GenerateContentResponse
  POST <prefix>/models/{model}:streamGenerateContent   with ``?alt=sse``: SSE, one
        ``data: {GenerateContentResponse}\\r\\n\\r\\n`` event per chunk (CRLF, like Google), no
        terminator, the stream just ends; without ``alt=sse`` (the real API's JSON array,
        which the gateway never asks for): 400.

Order of checks: ``x-fake-status`` -> authentication -> body validation -> reply.
Errors use Google's shape ``{"error": {"code", "message", "status"}}``.

Authentication: a non-empty ``x-goog-api-key`` header (or ``?key=``); otherwise 403
PERMISSION_DENIED with the real API's "unregistered callers" message.

Validation (400 INVALID_ARGUMENT), as far as the real API's rules are known:
  - body a JSON object; only known top-level fields (contents, systemInstruction, tools,
    toolConfig, generationConfig, safetySettings, cachedContent, labels; snake_case too);
  - ``contents`` a non-empty array; each content an object with ``parts`` a non-empty array
    and ``role`` (optional) "user" or "model";
  - each part has exactly one data field (text, inlineData, fileData, functionCall,
    functionResponse, executableCode, codeExecutionResult) plus optional metadata
    (thought, thoughtSignature, videoMetadata, mediaResolution, partMetadata); unknown
    fields are refused; inlineData needs mimeType and data, fileData needs fileUri;
  - functionCall only in "model" contents, with a non-empty name; functionResponse only in
    "user" contents, with a non-empty name and an object ``response``; a content holding
    function responses must follow a model content with as many function calls;
  - systemInstruction: parts of text only;
  - tools[].functionDeclarations[]: name matching ``[A-Za-z_][A-Za-z0-9_.:-]{0,63}``, not both
    ``parameters`` and ``parametersJsonSchema``;
  - toolConfig.functionCallingConfig.mode in AUTO / ANY / NONE / VALIDATED;
    ``allowedFunctionNames`` only with ANY;
  - generationConfig: only known fields; ``responseSchema`` / ``responseJsonSchema`` need
    ``responseMimeType: application/json``; at most 5 stopSequences; candidateCount 1..8.

Deterministic content (mirrors the OpenAI fake):
  reply            = "echo: " + text of the last "user" content that has text parts (its text
                     parts joined with a space); ``x-fake-words: N`` -> "w1 ... wN".
  promptTokenCount = words in the text of all contents and the systemInstruction
                     + 2 * number of contents (+ 2 with a systemInstruction)
  candidatesTokenCount = words in the reply
  candidateCount N > 1 -> N candidates (``index`` 0..N-1): candidate k answers the reply,
                   followed by " alt<k>" for k > 0; streamed chunk j holds the j-th piece of
                   each candidate; candidatesTokenCount counts all of them.
  cachedContentTokenCount = ``x-fake-cache-read: N`` (at most promptTokenCount; a part of it)
  thinking         with ``generationConfig.thinkingConfig.includeThoughts: true`` a first part
                   ``{"text": "thinking about: <last user text>", "thought": true}`` is
                   added and ``thoughtsTokenCount`` = its word count (added to the total).
  x-fake-tool-call: NAME  -> the model calls NAME with args ``{"query": <last user text>}``
                   instead of answering (thoughtSignature "ZmFrZS1zaWduYXR1cmU=" on the
                   call part); candidatesTokenCount = 1 + words in the query.
  Every response has finishReason STOP, modelVersion = the model of the path, a responseId.

Embeddings (``POST <prefix>/models/{model}:batchEmbedContents``, the call the gateway makes),
like the real API: it takes ``{"requests": [EmbedContentRequest]}`` (1 to 100),
each with ``model`` equal to ``models/{model}`` of the path, ``content.parts`` of text (non-empty
text), optional ``taskType`` (RETRIEVAL_QUERY, RETRIEVAL_DOCUMENT, SEMANTIC_SIMILARITY,
CLASSIFICATION, CLUSTERING, QUESTION_ANSWERING, FACT_VERIFICATION, CODE_RETRIEVAL_QUERY), ``title``
and ``outputDimensionality`` (1..3072); unknown fields refused. Answer
``{"embeddings": [{"values": [...]}]}`` in request order, no token counts (the real API reports none); each vector has
``outputDimensionality`` values (default 3072), from SHA-256 of the text (its first 8 equal the
OpenAI fake's vector of the same text).

Streaming: one chunk per word of the reply (each with its following whitespace; they
concatenate to the non-streamed reply), the thought part (if any) in a chunk of its own
first, a function call whole in one chunk. Every chunk carries cumulative usageMetadata; the
last one also carries finishReason. ``x-fake-chunk-delay-ms: N`` sleeps between chunks.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import time
from urllib.parse import parse_qs

from ._vectors import fake_vector

PATH_RE = re.compile(r"^(?P<prefix>.*)/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,63}$")
FAKE_SIGNATURE = base64.b64encode(b"fake-signature").decode("ascii")

TOP_LEVEL = {"contents", "systemInstruction", "system_instruction", "tools", "toolConfig",
             "tool_config", "generationConfig", "generation_config", "safetySettings",
             "safety_settings", "cachedContent", "cached_content", "labels"}
DATA_FIELDS = {
    "text": "text", "inlineData": "inlineData", "inline_data": "inlineData",
    "fileData": "fileData", "file_data": "fileData", "functionCall": "functionCall",
    "function_call": "functionCall", "functionResponse": "functionResponse",
    "function_response": "functionResponse", "executableCode": "executableCode",
    "executable_code": "executableCode", "codeExecutionResult": "codeExecutionResult",
    "code_execution_result": "codeExecutionResult",
}
PART_METADATA = {"thought", "thoughtSignature", "thought_signature", "videoMetadata",
                 "video_metadata", "mediaResolution", "media_resolution", "partMetadata",
                 "part_metadata"}
GENERATION_FIELDS = {
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema",
    "_responseJsonSchema", "responseModalities", "candidateCount", "maxOutputTokens",
    "temperature", "topP", "topK", "seed", "presencePenalty", "frequencyPenalty",
    "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers", "speechConfig",
    "thinkingConfig", "imageConfig", "mediaResolution",
}
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
                500: "INTERNAL", 501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE",
                504: "DEADLINE_EXCEEDED"}

_ids = itertools.count(1)


class GeminiError(Exception):
    def __init__(self, code: int, message: str, status: str | None = None):
        super().__init__(message)
        self.code = code
        self.body = {"error": {"code": code, "message": message,
                               "status": status or STATUS_NAMES.get(code, "UNKNOWN")}}


def _bad(message: str) -> GeminiError:
    return GeminiError(400, message, "INVALID_ARGUMENT")


def _unknown(name: str, where: str) -> GeminiError:
    return _bad(f'Invalid JSON payload received. Unknown name "{name}" at \'{where}\': '
                "Cannot find field.")


# ----------------------------------------------------------------------------- routing


def route(method: str, path: str):
    if method == "POST" and PATH_RE.match(path):
        return endpoint
    if method == "POST" and EMBED_RE.match(path):
        return embed_endpoint
    return None


EMBED_RE = re.compile(r"^(?P<prefix>.*)/models/(?P<model>[^/:]+):batchEmbedContents$")
EMBED_FIELDS = {"model", "content", "taskType", "title", "outputDimensionality"}
TASK_TYPES = {"RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY", "CLASSIFICATION",
              "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY"}


def embed_endpoint(h, path: str, query: str, raw: bytes):
    m = EMBED_RE.match(path)
    try:
        status = h.int_header("x-fake-status")
        if status is not None and 100 <= status <= 599:
            raise GeminiError(status, f"Fake error {status} (x-fake-status).")
        params = parse_qs(query)
        key = (h.headers.get("x-goog-api-key") or "").strip() or (params.get("key") or [""])[0]
        if not key:
            raise GeminiError(403, "Method doesn't allow unregistered callers (callers without "
                              "established identity). Please use API Key or other form of API "
                              "consumer identity to call this API.", "PERMISSION_DENIED")
        body = _parse(raw)
        model = m.group("model")
        unknown = set(body) - {"requests"}
        if unknown:
            raise _unknown(sorted(unknown)[0], "")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise _bad("* BatchEmbedContentsRequest.requests: requests must not be empty.")
        if len(requests) > 100:
            raise _bad("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch")
        embeddings = [{"values": _embed_one(r, model, f"requests[{i}]")}
                      for i, r in enumerate(requests)]
        h.send_json(200, {"embeddings": embeddings})
    except GeminiError as err:
        h.send_json(err.code, err.body)
    except (BrokenPipeError, ConnectionResetError):
        h.close_connection = True


def _embed_one(req, model: str, where: str) -> list[float]:
    if not isinstance(req, dict):
        raise _bad(f"Invalid value at '{where}': expected an EmbedContentRequest object")
    for name in req:
        if name not in EMBED_FIELDS:
            raise _unknown(name, where)
    named = req.get("model")
    if named is None:
        raise _bad(f"* BatchEmbedContentsRequest.{where}.model: model is required")
    if named is not None and named != f"models/{model}":
        raise _bad(f"* BatchEmbedContentsRequest.{where}.model: Model in the request ({named}) does not "
                   f"match the model of the batch (models/{model}).")
    content = req.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise _bad(f"* BatchEmbedContentsRequest.{where}.content.parts: contents.parts must not be empty.")
    texts = []
    for part in parts:
        if not isinstance(part, dict) or set(part) != {"text"} or not isinstance(part["text"], str):
            raise _bad(f"* {where}.content.parts: only text parts can be embedded")
        texts.append(part["text"])
    text = " ".join(texts)
    if not text.strip():
        raise _bad(f"* BatchEmbedContentsRequest.{where}.content: text must not be empty")
    task = req.get("taskType")
    if task is not None and task not in TASK_TYPES:
        raise _bad(f"Invalid value at '{where}.task_type' (type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType), \"{task}\"")
    size = req.get("outputDimensionality", 3072)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 3072:
        raise _bad(f"* {where}.output_dimensionality: must be between 1 and 3072")
    return fake_vector(text, size)


def endpoint(h, path: str, query: str, raw: bytes):
    m = PATH_RE.match(path)
    try:
        status = h.int_header("x-fake-status")
        if status is not None and 100 <= status <= 599:
            raise GeminiError(status, f"Fake error {status} (x-fake-status).")
        params = parse_qs(query)
        key = (h.headers.get("x-goog-api-key") or "").strip() or (params.get("key") or [""])[0]
        if not key:
            raise GeminiError(403, "Method doesn't allow unregistered callers (callers without "
                              "established identity). Please use API Key or other form of API "
                              "consumer identity to call this API.", "PERMISSION_DENIED")
        body = _parse(raw)
        validate(body)
        chunks = respond(h, m.group("model"), body)
        if m.group("method") == "generateContent":
            return h.send_json(200, merge(chunks))
        if (params.get("alt") or [""])[0] != "sse":
            raise _bad("the fake streams only with ?alt=sse (the gateway always asks for it)")
        _stream(h, chunks)
    except GeminiError as err:
        h.send_json(err.code, err.body)
    except (BrokenPipeError, ConnectionResetError):
        h.close_connection = True


def _parse(raw: bytes) -> dict:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(f"Invalid JSON payload received. {e}")
    if not isinstance(body, dict):
        raise _bad("Invalid JSON payload received. Expected an object.")
    return body


def _get(obj: dict, camel: str):
    snake = re.sub(r"([A-Z])", lambda x: "_" + x.group(1).lower(), camel)
    return obj.get(camel, obj.get(snake))


# -------------------------------------------------------------------------- validation


def validate(body: dict) -> None:
    for k in body:
        if k not in TOP_LEVEL:
            raise _unknown(k, "")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _bad("* GenerateContentRequest.contents: contents is not specified\n")
    prev = None
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        if not isinstance(content, dict):
            raise _bad(f"Invalid value at '{where}': expected an object")
        role = content.get("role", "user")
        if role not in ("user", "model"):
            raise _bad("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise _bad(f"* GenerateContentRequest.{where}.parts: contents.parts must not be "
                       "empty.\n")
        kinds = [validate_part(p, f"{where}.parts[{j}]", role) for j, p in enumerate(parts)]
        responses = kinds.count("functionResponse")
        if responses:
            calls = prev.count("functionCall") if prev and prev[0] == "model" else 0
            if calls != responses:
                raise _bad("Please ensure that the number of function response parts is equal to "
                           "the number of function call parts of the function call turn.")
        prev = [role] + kinds
    system = _get(body, "systemInstruction")
    if system is not None:
        sparts = system.get("parts") if isinstance(system, dict) else None
        if not isinstance(sparts, list) or not all(
                isinstance(p, dict) and isinstance(p.get("text"), str) for p in sparts):
            raise _bad("* GenerateContentRequest.system_instruction: system instruction must "
                       "contain text parts only.\n")
    validate_tools(body)
    validate_generation_config(_get(body, "generationConfig"))


def validate_part(part, where: str, role: str) -> str:
    if not isinstance(part, dict):
        raise _bad(f"Invalid value at '{where}': expected an object")
    data = []
    for k in part:
        if k in DATA_FIELDS:
            data.append(DATA_FIELDS[k])
        elif k not in PART_METADATA:
            raise _unknown(k, where)
    if len(data) != 1:
        raise _bad(f"* GenerateContentRequest.{where}.data: required oneof field 'data' must "
                   "have one initialized field\n")
    kind = data[0]
    value = _get(part, kind)
    if kind == "text" and not isinstance(value, str):
        raise _bad(f"Invalid value at '{where}.text': expected a string")
    if kind == "inlineData" and not (isinstance(value, dict) and _get(value, "mimeType")
                                     and isinstance(value.get("data"), str)):
        raise _bad(f"* GenerateContentRequest.{where}.inline_data: mimeType and data are "
                   "required\n")
    if kind == "fileData" and not (isinstance(value, dict) and _get(value, "fileUri")):
        raise _bad(f"* GenerateContentRequest.{where}.file_data.file_uri: file_uri is "
                   "required\n")
    if kind == "functionCall":
        if role != "model":
            raise _bad("Please ensure that function call turn comes immediately after a user "
                       "turn or after a function response turn.")
        if not isinstance(value, dict) or not value.get("name"):
            raise _bad(f"* GenerateContentRequest.{where}.function_call.name: Name cannot be "
                       "empty.\n")
        if "args" in value and not isinstance(value["args"], dict):
            raise _bad(f"Invalid value at '{where}.function_call.args': expected an object")
    if kind == "functionResponse":
        if role != "user":
            raise _bad("Please ensure that function response turn comes immediately after a "
                       "function call turn.")
        if not isinstance(value, dict) or not value.get("name"):
            raise _bad(f"* GenerateContentRequest.{where}.function_response.name: Name cannot "
                       "be empty.\n")
        if not isinstance(value.get("response"), dict):
            raise _bad(f"Invalid value at '{where}.function_response.response': expected an "
                       "object")
    return kind


def validate_tools(body: dict) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("Invalid value at 'tools': expected an array")
        for i, tool in enumerate(tools):
            decls = _get(tool, "functionDeclarations") if isinstance(tool, dict) else None
            for j, d in enumerate(decls or []):
                where = f"tools[{i}].function_declarations[{j}]"
                if not isinstance(d, dict) or not isinstance(d.get("name"), str) \
                        or not NAME_RE.match(d["name"]):
                    raise _bad(f"* GenerateContentRequest.{where}.name: Invalid function name. "
                               "Must start with a letter or an underscore. Must be a-z, A-Z, "
                               "0-9, or contain underscores, dots, colons and dashes, with a "
                               "maximum length of 64.\n")
                if _get(d, "parameters") is not None and _get(d, "parametersJsonSchema") is not None:
                    raise _bad(f"* GenerateContentRequest.{where}: parameters and "
                               "parameters_json_schema are mutually exclusive\n")
    config = _get(body, "toolConfig")
    if config is not None:
        fcc = _get(config, "functionCallingConfig") or {}
        mode = fcc.get("mode", "AUTO")
        if mode not in ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"):
            raise _bad(f"Invalid value at 'tool_config.function_calling_config.mode' "
                       f"({json.dumps(mode)})")
        if _get(fcc, "allowedFunctionNames") and mode != "ANY":
            raise _bad("* GenerateContentRequest.tool_config.function_calling_config."
                       "allowed_function_names: allowed_function_names should only be set when "
                       "the Function calling mode is ANY.\n")


def validate_generation_config(gc) -> None:
    if gc is None:
        return
    if not isinstance(gc, dict):
        raise _bad("Invalid value at 'generation_config': expected an object")
    for k in gc:
        camel = re.sub(r"_([a-z])", lambda x: x.group(1).upper(), k)
        if camel not in GENERATION_FIELDS:
            raise _unknown(k, "generation_config")
    schema = _get(gc, "responseSchema") or _get(gc, "responseJsonSchema")
    if schema is not None and _get(gc, "responseMimeType") != "application/json":
        raise _bad("* GenerateContentRequest.generation_config.response_mime_type: When "
                   "response schema is set, response mime type must be application/json\n")
    stops = _get(gc, "stopSequences") or []
    if len(stops) > 5:
        raise _bad("* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop "
                   "sequences are allowed\n")
    count = _get(gc, "candidateCount")
    if count is not None and not (isinstance(count, int) and 1 <= count <= 8):
        raise _bad("* GenerateContentRequest.generation_config.candidate_count: must be "
                   "between 1 and 8\n")


# ----------------------------------------------------------------------------- content


def content_text(content: dict) -> str:
    parts = content.get("parts") or []
    return " ".join(p["text"] for p in parts
                    if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought"))


def words(text: str) -> int:
    return len(text.split())


def stream_pieces(reply: str) -> list[str]:
    pieces = re.findall(r"\S+\s*", reply)
    lead = reply[: len(reply) - len(reply.lstrip())]
    if pieces and lead:
        pieces[0] = lead + pieces[0]
    return pieces or [reply]


def respond(h, model: str, body: dict) -> list[dict]:
    """The response as stream chunks (the non-streamed response is their merge)."""
    contents = body["contents"]
    last_user = ""
    for c in contents:
        if c.get("role", "user") == "user" and any(
                isinstance(p, dict) and "text" in p for p in c.get("parts") or []):
            last_user = content_text(c)
    system = _get(body, "systemInstruction")
    prompt = sum(words(content_text(c)) for c in contents) + 2 * len(contents)
    if isinstance(system, dict):
        prompt += words(content_text(system)) + 2
    gc = _get(body, "generationConfig") or {}
    thinking = (_get(gc, "thinkingConfig") or {})
    include_thoughts = _get(thinking, "includeThoughts") is True
    response_id = f"gemfake{next(_ids)}"
    cached = h.int_header("x-fake-cache-read")
    cached = None if cached is None else min(max(cached, 0), prompt)

    def chunk(parts, candidates_tokens, thoughts=0, finish=False):
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": candidates_tokens,
                 "totalTokenCount": prompt + candidates_tokens + thoughts,
                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        if cached is not None:
            usage["cachedContentTokenCount"] = cached
        cand = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            cand["finishReason"] = "STOP"
        return {"candidates": [cand], "usageMetadata": usage, "modelVersion": model,
                "responseId": response_id}

    chunks = []
    thoughts = 0
    if include_thoughts:
        thought = f"thinking about: {last_user}"
        thoughts = words(thought)
        chunks.append(chunk([{"text": thought, "thought": True}], 0, thoughts))
    tool = (h.headers.get("x-fake-tool-call") or "").strip()
    if tool:
        call = {"functionCall": {"name": tool, "args": {"query": last_user}},
                "thoughtSignature": FAKE_SIGNATURE}
        chunks.append(chunk([call], 1 + words(last_user), thoughts, finish=True))
        return chunks
    fake_words = h.int_header("x-fake-words")
    reply = (" ".join(f"w{i}" for i in range(1, max(fake_words, 0) + 1))
             if fake_words is not None else "echo: " + last_user)
    count = _get(gc, "candidateCount") or 1
    if count > 1:
        return several_candidates(chunk, [reply] + [f"{reply} alt{k}" for k in range(1, count)])
    pieces = stream_pieces(reply)
    so_far = ""
    for i, piece in enumerate(pieces):
        so_far += piece
        chunks.append(chunk([{"text": piece}], words(so_far), thoughts,
                            finish=i == len(pieces) - 1))
    return chunks


def several_candidates(chunk, replies: list[str]) -> list[dict]:
    """``candidateCount`` > 1: candidate k answers replies[k]; chunk j holds the j-th piece of
    every candidate that has one (with its ``index``, finishReason on its last piece);
    candidatesTokenCount counts all candidates."""
    pieces = [stream_pieces(r) for r in replies]
    chunks = []
    for j in range(max(len(p) for p in pieces)):
        c = chunk([], sum(words("".join(p[:j + 1])) for p in pieces))
        c["candidates"] = [
            {"content": {"parts": [{"text": p[j]}], "role": "model"}, "index": k,
             **({"finishReason": "STOP"} if j == len(p) - 1 else {})}
            for k, p in enumerate(pieces) if j < len(p)]
        chunks.append(c)
    return chunks


def merge(chunks: list[dict]) -> dict:
    """The non-streamed response: all parts of each candidate (adjacent plain texts joined),
    last usage."""
    by_index: dict[int, list[dict]] = {}
    for c in chunks:
        for cand in c["candidates"]:
            parts = by_index.setdefault(cand.get("index", 0), [])
            for p in cand["content"]["parts"]:
                if parts and set(p) == {"text"} and set(parts[-1]) == {"text"}:
                    parts[-1] = {"text": parts[-1]["text"] + p["text"]}
                else:
                    parts.append(dict(p))
    last = chunks[-1]
    cands = [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": i}
             for i, parts in sorted(by_index.items())]
    return {"candidates": cands, "usageMetadata": last["usageMetadata"],
            "modelVersion": last["modelVersion"], "responseId": last["responseId"]}


def _stream(h, chunks: list[dict]) -> None:
    delay = max(h.int_header("x-fake-chunk-delay-ms") or 0, 0) / 1000.0
    h.start_stream("text/event-stream")
    for i, c in enumerate(chunks):
        if i > 0 and delay > 0:
            time.sleep(delay)
        h.write_chunk(b"data: " + json.dumps(c, separators=(",", ":")).encode("utf-8") + b"\r\n\r\n")
    h.end_stream()
