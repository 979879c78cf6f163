"""SSE bodies of the benchmark upstreams, as lists of events (each a complete `data: ...\\n\\n`).

openai_stream(n): a Chat Completions stream as OpenAI sends it with
`stream_options.include_usage`: a role chunk, n content chunks, a finish chunk (each with
`"usage":null`), a usage chunk with empty `choices`, and `data: [DONE]`.
anthropic_stream(n): an Anthropic Messages stream: message_start, content_block_start,
n content_block_delta, content_block_stop, message_delta (usage), message_stop.
"""

from __future__ import annotations

import json

WORDS = ("Set an idle timeout on the upstream cluster shorter than the keep-alive of the "
         "service, and retry once on reset for idempotent requests. ").split(" ")


def _word(i: int) -> str:
    return (" " if i else "") + (WORDS[i % len(WORDS)] or "ok")


def _sse(obj) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def openai_stream(n: int) -> list[bytes]:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1741570283,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_44709d6fcb"}

    def chunk(delta, finish=None):
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                          "finish_reason": finish}], "usage": None})

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": _word(i)}) for i in range(n)]
    events.append(chunk({}, "stop"))
    events.append(_sse({**base, "choices": [], "usage": {
        "prompt_tokens": 412, "completion_tokens": n, "total_tokens": 412 + n,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0}}}))
    events.append(b"data: [DONE]\n\n")
    return events


def anthropic_stream(n: int) -> list[bytes]:
    def ev(name, obj):
        return (f"event: {name}\n".encode() + b"data: " +
                json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")

    events = [ev("message_start", {"type": "message_start", "message": {
        "id": "msg_bench", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929", "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": {"input_tokens": 412, "cache_creation_input_tokens": 0,
                                         "cache_read_input_tokens": 0, "output_tokens": 1}}}),
              ev("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}})]
    events += [ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": _word(i)}})
               for i in range(n)]
    events.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(ev("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                       "usage": {"output_tokens": n}}))
    events.append(ev("message_stop", {"type": "message_stop"}))
    return events
