"""Stage 6 of the pipeline, the response cache: an exact cache and an opt-in semantic cache, both in
Redis and keyed by tenant, model alias and model version (``docs/cache.md``)."""
