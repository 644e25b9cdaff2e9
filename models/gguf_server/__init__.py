"""The GGUF model server: llama-cpp-python behind an OpenAI-compatible HTTP API, several requests
decoded at once (one llama.cpp context per slot over one memory-mapped model file)."""
