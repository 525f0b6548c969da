-- A plan's own lifecycle state in its stages' names (PENDING, IN_PROGRESS,
-- VALIDATING, COMPLETED, FAILED, ROLLED_BACK), beside status (the richer
-- phase or outcome), so `WHERE state = 'ROLLED_BACK'` works on plans as on
-- stages; and what revisions and undo need: the spec the run ran (JSON,
-- secret references unresolved), who started it, and the revision an undo
-- restores. Additive: every existing column stays as it was.

-- +goose Up
ALTER TABLE deployment_plans
    ADD COLUMN state      text  NOT NULL DEFAULT '',
    ADD COLUMN spec       jsonb,
    ADD COLUMN started_by text  NOT NULL DEFAULT '',
    ADD COLUMN undo_of    text  NOT NULL DEFAULT '';
-- Rows written before: the state from status, as api.PlanState maps it
-- (clear-hold rows, which succeed at once, are COMPLETED).
UPDATE deployment_plans SET state = CASE
    WHEN success OR status = 'succeeded' THEN 'COMPLETED'
    WHEN status = 'rolled_back' THEN 'ROLLED_BACK'
    WHEN status IN ('rollback_failed', 'rejected', 'rolling_back', 'verifying_rollback') THEN 'FAILED'
    WHEN status IN ('pending', '') THEN 'PENDING'
    WHEN status IN ('validating', 'keeping_blue', 'awaiting_release', 'integration_validation',
                    'production_readiness') THEN 'VALIDATING'
    ELSE 'IN_PROGRESS' END;
-- Lists by state, newest first, as by status.
CREATE INDEX deployment_plans_state_created_idx ON deployment_plans (state, created_at DESC, id DESC);

-- +goose Down
DROP INDEX deployment_plans_state_created_idx;
ALTER TABLE deployment_plans DROP COLUMN undo_of, DROP COLUMN started_by, DROP COLUMN spec, DROP COLUMN state;
