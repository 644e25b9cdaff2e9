-- Response cache and conversation history: per-tenant settings, conversations and their messages.
-- cache_policy: JSON (NULL = the platform defaults, see functions/cache/policy.py).
-- retention_days: conversations untouched this long are deleted by the retention timer
-- (NULL = the platform default, LLMP_CONVERSATION_RETENTION_DAYS).
ALTER TABLE tenants ADD COLUMN cache_policy jsonb;
ALTER TABLE tenants ADD COLUMN retention_days int CHECK (retention_days IS NULL OR retention_days > 0);

CREATE TABLE conversations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    title       text,
    metadata    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Listing (newest first, keyset pagination) and retention (oldest activity first).
CREATE INDEX conversations_tenant_created ON conversations (tenant_id, created_at DESC, id DESC);
CREATE INDEX conversations_updated ON conversations (updated_at);

-- Stored text is what the guardrails let through: masked values stay masked (<PERSON_1>).
-- System and developer messages are instructions sent with each request and are not stored.
-- tokens: the completion's own count for answers, an estimate for the other turns.
CREATE TABLE conversation_messages (
    id               bigserial PRIMARY KEY,
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role             text NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
    content          text NOT NULL,
    tokens           int NOT NULL CHECK (tokens >= 0),
    extra            jsonb,           -- tool_calls, tool_call_id, name: as in the OpenAI message
    model            text,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX conversation_messages_conversation ON conversation_messages (conversation_id, id);
