"""The official ``openai`` client asks a knowledge base through ``extra_body`` and reads the
citations, streamed and not, from SmolLM2 through the real gateway."""

from __future__ import annotations

import httpx
import pytest
from openai import OpenAI

pytestmark = pytest.mark.slow

DOC = (b"# Office guide\n\n## Parking\nThe garage under building B opens at 6:30 and has 40 charging "
       b"points for electric cars.\n\n## Mail\nParcels are kept at the front desk for two weeks.\n")


def test_openai_client_gets_citations(gateway_url: str, api_key: str) -> None:
    r = httpx.post(f"{gateway_url}/v1/rag/kbs/office/documents", params={"filename": "office.md"},
                   content=DOC, headers={"authorization": f"Bearer {api_key}"}, timeout=120)
    assert r.status_code in (200, 201), r.text
    msg = [{"role": "user", "content": "When does the garage open?"}]
    with OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=0) as client:
        reply = client.chat.completions.create(model="smollm2-135m", messages=msg,
                                               max_tokens=16, temperature=0,
                                               extra_body={"rag": {"kb": "office", "top_k": 2}})
        assert reply.choices[0].message.content
        rag = (reply.model_extra or {})["rag"]
        assert rag["citations"][0]["document_id"] == "office.md"
        assert rag["citations"][0]["heading"] == "Parking"
        chunks = list(client.chat.completions.create(
            model="smollm2-135m", messages=msg, max_tokens=8, temperature=0, stream=True,
            extra_body={"rag": {"kb": "office"}}))
    streamed = [c.model_extra["rag"] for c in chunks if c.model_extra and "rag" in c.model_extra]
    assert len(streamed) == 1 and streamed[0]["citations"][0]["document_id"] == "office.md"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
