-- Guardrails: a policy per tenant (JSON, NULL = the platform defaults) and the audit trail.
ALTER TABLE tenants ADD COLUMN guardrail_policy jsonb;

-- One row per guardrail decision. Never a raw value: entity types and counts only.
CREATE TABLE guardrail_audit (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    tenant_id     uuid NOT NULL,
    request_id    text NOT NULL,
    model         text NOT NULL,
    stage         text NOT NULL CHECK (stage IN ('input', 'output')),
    detector      text NOT NULL,
    action        text NOT NULL,
    entity_types  jsonb NOT NULL DEFAULT '{}',
    score         real
);

CREATE INDEX guardrail_audit_tenant_at ON guardrail_audit (tenant_id, at);
