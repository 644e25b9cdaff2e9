"""The embedding tier: a sentence-transformers model on CPU torch behind OpenAI's ``/v1/embeddings``."""
