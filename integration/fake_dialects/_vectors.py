"""Deterministic fake embedding vectors shared by the Gemini and Bedrock embeddings fakes."""

from __future__ import annotations

import hashlib


def fake_vector(text: str, size: int) -> list[float]:
    """``size`` floats in [-1, 1) from SHA-256 of the text (block i hashes ``text`` + i): the
    same text always embeds the same, its first 8 values equal the OpenAI fake's vector."""
    out: list[float] = []
    block = 0
    while len(out) < size:
        data = text.encode("utf-8") if block == 0 else f"{text}\x00{block}".encode("utf-8")
        out.extend(round((b - 128) / 128.0, 6) for b in hashlib.sha256(data).digest())
        block += 1
    return out[:size]


def words(text: str) -> int:
    return len(text.split())
