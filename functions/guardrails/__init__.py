"""Guardrails: input and output checks (PII, prompt injection, moderation) driven by a tenant policy."""
