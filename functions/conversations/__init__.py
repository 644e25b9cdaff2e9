"""Stage 4 of the pipeline, conversations: history kept in Postgres, prepended to a request that names
a ``conversation_id`` and extended with its new turns once the answer is complete
(``docs/cache.md``)."""
