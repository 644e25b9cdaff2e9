"""Pydantic request/response models of the OpenAI API, one module per endpoint."""
