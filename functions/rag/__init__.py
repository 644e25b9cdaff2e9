"""Retrieval-augmented generation: ingest documents into Qdrant, retrieve in two stages, cite.

Nothing heavy is imported here: torch, sentence-transformers and qdrant-client load on first use.
"""
