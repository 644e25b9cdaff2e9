-- RAG ingestion jobs run by the rag_ingest_job queue trigger (LLMP_RAG_JOBS=queue). The upload's bytes
-- stay here until the job has run (then NULL); finished rows are deleted LLMP_RAG_JOB_TTL_S later.
-- tenant_id: the API key's tenant (text: the same value the HTTP handlers compare against).
CREATE TABLE rag_jobs (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL,
    kb           text NOT NULL,
    filename     text NOT NULL,
    media_type   text,
    doc_id       text,
    title        text,
    data         bytea,
    bytes        bigint NOT NULL CHECK (bytes >= 0),
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    attempts     int NOT NULL DEFAULT 0,
    result       jsonb,
    error        jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);

CREATE INDEX rag_jobs_finished ON rag_jobs (finished_at) WHERE finished_at IS NOT NULL;
