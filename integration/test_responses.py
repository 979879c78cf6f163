"""The OpenAI Responses API (`POST /v1/responses`) as a client dialect, through real Envoy,
with the official `openai` SDK's `client.responses.create` and `client.responses.stream`,
against every provider kind of the demo (OpenAI, Azure, Anthropic, Gemini, Bedrock,
Mistral). OpenAI itself gets the request as is; every other provider gets it translated
into its own API, and the answer comes back as a `response` object or the typed SSE events.

The fakes share one arithmetic (integration/fake_provider.py): the reply is "echo: " + the
last user text, input tokens = words + 2 per message, output tokens = words of the reply.
"""

from __future__ import annotations

import json

import openai
import pytest

from harness import metric_value
from test_translation import CONFIG, MODELS, UPSTREAM_PATHS, openai_client

# OpenAI itself is passed through to its own Responses API; the rest are translated.
RESPONSES_PATHS = dict(UPSTREAM_PATHS, **{"t-openai": "/v1/responses"})
TRANSLATED = [m for m in MODELS if m != "t-openai"]
TOOLS = [{"type": "function", "name": "lookup", "description": "Look something up",
          "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}]


@pytest.fixture
def gw(shared_gateway):
    return shared_gateway(CONFIG)


def upstream(fake_requests, model):
    seen = fake_requests.last()
    assert RESPONSES_PATHS[model] in seen["path"], seen["path"]
    assert "sk-client-secret" not in json.dumps(seen["headers"])
    return seen


@pytest.mark.parametrize("model", list(MODELS))
def test_create(gw, fake_requests, model):
    response = openai_client(gw).responses.create(model=model, input="one two three", store=False)
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == "echo: one two three"
    assert [item.type for item in response.output] == ["message"]
    assert response.model
    assert (response.usage.input_tokens, response.usage.output_tokens) == (5, 4)
    assert response.usage.total_tokens == 9
    assert response.usage.input_tokens_details.cached_tokens == 0
    seen = upstream(fake_requests, model)
    if model != "t-openai":
        assert "input" not in seen["body"] and "store" not in seen["body"]


@pytest.mark.parametrize("model", list(MODELS))
def test_stream(gw, fake_requests, model):
    with openai_client(gw).responses.stream(model=model, input="one two three") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "echo: one two three"
    assert final.output_text == "echo: one two three"
    assert final.status == "completed"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, 4)
    upstream(fake_requests, model)


@pytest.mark.parametrize("model", TRANSLATED)
def test_typed_events_in_order_with_sequence_numbers(gw, model):
    with openai_client(gw).responses.stream(model=model, input="one two three") as stream:
        events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.id == events[0].response.id


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("model", TRANSLATED)
def test_function_call_and_its_output(gw, fake_requests, model, stream):
    c = openai_client(gw, **{"x-fake-tool-call": "lookup"})
    if stream:
        with c.responses.stream(model=model, input="find cats", tools=TOOLS) as s:
            events = list(s)
            response = s.get_final_response()
        args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
        assert json.loads(args) == {"query": "find cats"}
        done = [e for e in events if e.type == "response.function_call_arguments.done"]
        assert json.loads(done[0].arguments) == {"query": "find cats"}
    else:
        response = c.responses.create(model=model, input="find cats", tools=TOOLS)
    calls = [item for item in response.output if item.type == "function_call"]
    assert [call.name for call in calls] == ["lookup"]
    assert json.loads(calls[0].arguments) == {"query": "find cats"}
    upstream(fake_requests, model)
    # The output goes back as input with the call's output: translated again.
    follow = openai_client(gw).responses.create(model=model, tools=TOOLS, input=[
        {"role": "user", "content": "find cats"},
        *[item.model_dump(exclude_none=True) for item in response.output],
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "cats are mammals"},
    ])
    assert follow.output_text.startswith("echo:")
    assert follow.status == "completed"


@pytest.mark.parametrize("model", TRANSLATED)
def test_instructions_structured_output_and_caps_are_translated(gw, fake_requests, model):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
              "additionalProperties": False}
    response = openai_client(gw).responses.create(
        model=model, instructions="Be brief.", max_output_tokens=50, temperature=0.5,
        text={"format": {"type": "json_schema", "name": "reply", "schema": schema}},
        input=[{"role": "user", "content": [{"type": "input_text", "text": "one two"}]}])
    assert response.output_text == "echo: one two"
    body = upstream(fake_requests, model)["body"]
    text = json.dumps(body)
    assert "Be brief." in text and "answer" in text, text
    caps = {"t-claude": body.get("max_tokens"), "t-gemini": body.get("generationConfig", {}).get("maxOutputTokens"),
            "t-bedrock": body.get("inferenceConfig", {}).get("maxTokens")}
    assert caps.get(model, body.get("max_tokens") or body.get("max_completion_tokens")) == 50


@pytest.mark.parametrize("model", TRANSLATED)
def test_stateful_requests_are_a_400_before_any_provider(gw, fake_requests, model):
    for extra in ({"previous_response_id": "resp_123"}, {"store": True}):
        with pytest.raises(openai.BadRequestError) as err:
            openai_client(gw).responses.create(model=model, input="hi", **extra)
        assert err.value.body["param"] == next(iter(extra)), err.value.body
        assert "no stored state" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        openai_client(gw).responses.create(model=model, input="hi", tools=[{"type": "web_search_preview"}])
    assert err.value.body["param"] == "tools[0].type"
    assert fake_requests() == []


@pytest.mark.parametrize("model", list(MODELS))
def test_provider_errors_in_openais_error_shape(gw, model):
    with pytest.raises(openai.RateLimitError) as err:
        openai_client(gw, **{"x-fake-status": "429"}).responses.create(model=model, input="x")
    assert err.value.body["message"]


def test_a_provider_error_mid_stream_fails_the_response(gw):
    # Anthropic's recorded stream: a text delta, then `event: error` (overloaded_error).
    c = openai_client(gw, **{"x-fake-replay": "anthropic/stream_error_overloaded.sse"})
    with c.responses.stream(model="t-claude", input="one two three") as stream:
        events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["error", "response.failed"], kinds
    assert events[-1].response.status == "failed"
    assert events[-1].response.error.message
    assert "response.completed" not in kinds


def test_usage_and_metrics_of_translated_responses(gw):
    c = openai_client(gw)
    c.responses.create(model="t-gemini", input="one two three")
    with c.responses.stream(model="t-gemini", input="four five") as stream:
        stream.get_final_response()
    labels = dict(gen_ai_operation_name="responses", gen_ai_request_model="t-gemini", usage_source="reported")
    text = gw.wait_for_metrics(lambda t: (metric_value(t, "gen_ai_client_token_count", gen_ai_token_type="output",
                                                       **labels) or 0) >= 7)
    # 5 + 4 input tokens, 4 + 3 output tokens over the two calls, as Gemini reported them.
    assert metric_value(text, "gen_ai_client_token_count", gen_ai_token_type="input", **labels) >= 9
    assert metric_value(text, "gen_ai_client_token_count", gen_ai_token_type="output", **labels) >= 7


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("model", ["t-claude", "t-gemini"])
def test_reasoning_summaries_and_signatures_round_trip(gw, fake_requests, model, stream):
    c = openai_client(gw)
    args = dict(model=model, input="one two", reasoning={"effort": "low", "summary": "auto"},
                include=["reasoning.encrypted_content"], store=False)
    if stream:
        with c.responses.stream(**args) as s:
            events = list(s)
            response = s.get_final_response()
        summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
        assert summary == "thinking about: one two"
    else:
        response = c.responses.create(**args)
    assert [item.type for item in response.output] == ["reasoning", "message"]
    reasoning = response.output[0]
    assert [s.text for s in reasoning.summary] == ["thinking about: one two"]
    assert response.output_text == "echo: one two"
    assert response.usage.output_tokens_details.reasoning_tokens >= 0
    sent = upstream(fake_requests, model)["body"]
    if model == "t-claude":
        assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
        assert reasoning.encrypted_content.startswith("fake-sig-")
    else:
        assert sent["generationConfig"]["thinkingConfig"]["includeThoughts"] is True
    # Given back (as Codex does with store: false), the signed reasoning reaches the provider.
    follow = c.responses.create(model=model, reasoning={"effort": "low"}, store=False, input=[
        {"role": "user", "content": "one two"},
        *[item.model_dump(exclude_none=True) for item in response.output],
        {"role": "user", "content": "three"},
    ])
    assert follow.output_text == "echo: three"
    history = json.dumps(upstream(fake_requests, model)["body"])
    assert "thinking about: one two" in history
    if model == "t-claude":
        assert reasoning.encrypted_content in history


def test_unknown_members_are_refused_by_name(gw, fake_requests):
    with pytest.raises(openai.BadRequestError) as err:
        openai_client(gw).responses.create(model="t-claude", input="x", extra_body={"frobnicate": 1})
    assert err.value.body["param"] == "frobnicate"
    assert "frobnicate" in err.value.message
    assert fake_requests() == []
