-- Tenancy (issue 5): what a tenant and a key may use, how fast, and what it costs.
-- NULL limits mean "no limit"; NULL allowed_models means "every model in the catalog".
-- Independent of 0002 (guardrails): only new columns and tables, so the two apply in either order.
ALTER TABLE tenants
    ADD COLUMN allowed_models  text[],
    ADD COLUMN rpm_limit       integer CHECK (rpm_limit > 0),
    ADD COLUMN tpm_limit       integer CHECK (tpm_limit > 0),
    ADD COLUMN monthly_budget  numeric(14, 4) CHECK (monthly_budget >= 0),
    ADD COLUMN on_redis_down   text NOT NULL DEFAULT 'open'
                               CHECK (on_redis_down IN ('open', 'closed')),
    ADD COLUMN entra_roles     text[] NOT NULL DEFAULT '{}',
    ADD COLUMN entra_groups    text[] NOT NULL DEFAULT '{}',
    ADD COLUMN updated_at      timestamptz NOT NULL DEFAULT now();

CREATE INDEX tenants_entra_roles ON tenants USING gin (entra_roles);
CREATE INDEX tenants_entra_groups ON tenants USING gin (entra_groups);

ALTER TABLE api_keys
    ADD COLUMN allowed_models  text[],
    ADD COLUMN rpm_limit       integer CHECK (rpm_limit > 0),
    ADD COLUMN tpm_limit       integer CHECK (tpm_limit > 0),
    ADD COLUMN roles           text[] NOT NULL DEFAULT '{}';

-- One row per answered (or failed) request. entry_id is made by the gateway, so a batch retried
-- after an ambiguous commit is written once.
CREATE TABLE spend_ledger (
    entry_id           uuid PRIMARY KEY,
    at                 timestamptz NOT NULL,
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    principal          text NOT NULL,          -- an API key id, or entra:<object id>
    request_id         text,
    model              text NOT NULL,
    backend            text,
    prompt_tokens      integer NOT NULL DEFAULT 0,
    completion_tokens  integer NOT NULL DEFAULT 0,
    backend_seconds    double precision,
    cost               numeric(18, 8) NOT NULL DEFAULT 0,
    error              text
);

CREATE INDEX spend_ledger_tenant_at ON spend_ledger (tenant_id, at);
