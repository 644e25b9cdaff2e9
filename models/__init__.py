"""The model tier: catalog, GGUF server on llama-cpp-python, Blob sync, vLLM settings.

Keep this package's ``__init__`` empty: the gateway imports ``models.catalog`` and must not pay for
llama.cpp at import time.
"""
