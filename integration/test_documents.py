"""Documents (PDF and text) through real Envoy with the official SDKs (issue 13, "Documents and
the remaining content"): an OpenAI `file` part and an Anthropic `document` block reach every
provider in its own shape, and a document a provider cannot take is a 400 in the client's
error shape naming the part, with nothing sent upstream."""

from __future__ import annotations

import base64

import anthropic
import openai
import pytest

import harness

CLIENT_KEY = "sk-doc-client"
PROVIDERS = harness.fake_providers("oa", "an", "ge", "br")
MODELS = {"d-openai": ("oa", "gpt-4o-mini"), "d-claude": ("an", "claude-sonnet-4-5"),
          "d-gemini": ("ge", "gemini-2.5-flash"), "d-bedrock": ("br", "anthropic.claude-sonnet-4-5-20250929-v1:0")}
CONFIG = {"providers": PROVIDERS,
          "models": {name: {"provider": p, "model": m} for name, (p, m) in MODELS.items()}}
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n").decode()


@pytest.fixture
def gw(shared_gateway):
    return shared_gateway(CONFIG)


def upstream_document(model: str, body: dict) -> dict:
    """The document as the provider received it, normalized to (kind, media type, data, name)."""
    if model == "d-openai":
        part = body["messages"][0]["content"][0]
        media, data = part["file"]["file_data"].removeprefix("data:").split(";base64,")
        return {"kind": part["type"], "media": media, "data": data, "name": part["file"]["filename"]}
    if model == "d-claude":
        block = body["messages"][0]["content"][0]
        return {"kind": block["type"], "media": block["source"]["media_type"], "data": block["source"]["data"],
                "name": block.get("title")}
    if model == "d-gemini":
        part = body["contents"][0]["parts"][0]["inlineData"]
        return {"kind": "inlineData", "media": part["mimeType"], "data": part["data"], "name": None}
    doc = body["messages"][0]["content"][0]["document"]
    return {"kind": "document", "media": doc["format"], "data": doc["source"]["bytes"], "name": doc["name"]}


EXPECTED_KIND = {"d-openai": ("file", "application/pdf"), "d-claude": ("document", "application/pdf"),
                 "d-gemini": ("inlineData", "application/pdf"), "d-bedrock": ("document", "pdf")}


@pytest.mark.parametrize("model", [m for m in MODELS if m != "d-openai"])
def test_openai_file_part_reaches_every_provider(gw, fake_requests, model):
    reply = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=CLIENT_KEY, max_retries=0).chat.completions.create(
        model=model, messages=[{"role": "user", "content": [
            {"type": "file", "file": {"filename": "draconomicon.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}},
            {"type": "text", "text": "What is the first dragon in the book?"}]}])
    assert reply.choices[0].message.content == "echo: What is the first dragon in the book?"
    doc = upstream_document(model, fake_requests.last()["body"])
    assert (doc["kind"], doc["media"], doc["data"]) == (*EXPECTED_KIND[model], PDF)
    assert doc["name"] in ("draconomicon.pdf", "draconomicon pdf", None), doc["name"]


@pytest.mark.parametrize("model", [m for m in MODELS if m != "d-claude"])
def test_anthropic_document_block_reaches_every_provider(gw, fake_requests, model):
    message = anthropic.Anthropic(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0).messages.create(
        model=model, max_tokens=50, messages=[{"role": "user", "content": [
            {"type": "document", "title": "Model Card",
             "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
            {"type": "text", "text": "What are the key findings?"}]}])
    assert message.content[0].text == "echo: What are the key findings?"
    doc = upstream_document(model, fake_requests.last()["body"])
    assert (doc["kind"], doc["media"], doc["data"]) == (*EXPECTED_KIND[model], PDF)
    assert doc["name"] in ("Model Card", None)


def test_documents_a_provider_cannot_take_are_refused_in_the_clients_shape(gw, fake_requests):
    fake_requests.clear()
    client = anthropic.Anthropic(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(model="d-bedrock", max_tokens=50, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "url", "url": "https://example.com/report.pdf"}},
            {"type": "text", "text": "summarize"}]}])
    error = refused.value.body["error"]
    assert error["type"] == "invalid_request_error"
    assert "messages[0].content[0]" in error["message"] and "bedrock" in error["message"], error
    with pytest.raises(openai.BadRequestError) as refused:
        openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=CLIENT_KEY, max_retries=0).chat.completions.create(
            model="d-claude", messages=[{"role": "user", "content": [
                {"type": "file", "file": {"filename": "a.csv", "file_data": "data:text/csv;base64,YSxiCg=="}}]}])
    assert refused.value.body["code"] == "unsupported_parameter"
    assert "text/csv" in refused.value.body["message"] and "anthropic" in refused.value.body["message"]
    assert fake_requests() == [], "a refused request never reaches a provider"
