"""The llmp gateway: an OpenAI-compatible API served by Azure Functions (and by uvicorn locally)."""
