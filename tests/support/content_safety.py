"""A loopback stand-in for Azure AI Content Safety's REST API (no local equivalent exists), so the
real ``azure-ai-contentsafety`` client, its pipeline and its response models are exercised."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

KEY = "test-content-safety-key"


def create_app(calls: list[dict[str, Any]]) -> Starlette:
    async def analyze(request: Request) -> JSONResponse:
        if request.headers.get("ocp-apim-subscription-key") != KEY:
            return JSONResponse({"error": {"code": "401", "message": "bad key"}}, status_code=401)
        body = await request.json()
        calls.append({"path": request.url.path, "query": request.url.query, "body": body})
        text = body["text"].lower()
        return JSONResponse({"blocklistsMatch": [], "categoriesAnalysis": [
            {"category": "Hate", "severity": 0},
            {"category": "SelfHarm", "severity": 0},
            {"category": "Sexual", "severity": 0},
            {"category": "Violence", "severity": 6 if "attack" in text else 2 if "fight" in text else 0},
        ]})

    async def shield(request: Request) -> JSONResponse:
        if request.headers.get("ocp-apim-subscription-key") != KEY:
            return JSONResponse({"error": {"code": "401", "message": "bad key"}}, status_code=401)
        body = await request.json()
        calls.append({"path": request.url.path, "query": request.url.query, "body": body})
        return JSONResponse({
            "userPromptAnalysis": {"attackDetected": "ignore" in body["userPrompt"].lower()},
            "documentsAnalysis": [{"attackDetected": "ignore" in d.lower()} for d in body["documents"]],
        })

    return Starlette(routes=[Route("/contentsafety/text:analyze", analyze, methods=["POST"]),
                             Route("/contentsafety/text:shieldPrompt", shield, methods=["POST"])])
