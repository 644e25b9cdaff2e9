-- Tier choice (issue 14): how each answer was routed, so cost savings can be reported, and the
-- tenant's price ceiling that routes respect. Only new columns: independent of other migrations.
ALTER TABLE spend_ledger
    ADD COLUMN route    text,                       -- the route the client named (e.g. auto), or NULL
    ADD COLUMN reason   text,                       -- why this tier: requested, rule:..., classifier:..., default
    ADD COLUMN retries  integer NOT NULL DEFAULT 0; -- replicas or tiers tried before the one that answered

ALTER TABLE tenants
    ADD COLUMN max_price_per_1k numeric(18, 8) CHECK (max_price_per_1k >= 0);
