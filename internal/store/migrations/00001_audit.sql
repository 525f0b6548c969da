-- The audit trail: one row per rollout run, its stages, its events and its
-- health rounds (one row per check result). Children carry the run's keys
-- but no foreign key to deployment_plans: batches arrive in any order, and a
-- run's rounds may be written before its plan.

-- +goose Up
CREATE TABLE deployment_plans (
    id           bigserial   PRIMARY KEY,
    workflow_id  text        NOT NULL,
    run_id       text        NOT NULL,
    execution_id text        NOT NULL DEFAULT '',
    request_id   text        NOT NULL DEFAULT '',
    service      text        NOT NULL DEFAULT '',
    platform     text        NOT NULL DEFAULT '',
    strategy     text        NOT NULL DEFAULT '',
    target       text        NOT NULL DEFAULT '',
    image_from   text        NOT NULL DEFAULT '',
    image_to     text        NOT NULL DEFAULT '',
    status       text        NOT NULL DEFAULT '',
    success      boolean     NOT NULL DEFAULT false,
    rolled_back  boolean     NOT NULL DEFAULT false,
    error        text        NOT NULL DEFAULT '',
    stage_count  integer     NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    completed_at timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deployment_plans_run_key UNIQUE (workflow_id, run_id)
);
-- Lists: newest first, all or by service or by status. The unique key
-- above also finds a workflow ID's runs.
CREATE INDEX deployment_plans_created_idx ON deployment_plans (created_at DESC, id DESC);
CREATE INDEX deployment_plans_service_created_idx ON deployment_plans (service, created_at DESC, id DESC);
CREATE INDEX deployment_plans_status_created_idx ON deployment_plans (status, created_at DESC, id DESC);
CREATE INDEX deployment_plans_execution_idx ON deployment_plans (execution_id, created_at DESC);

CREATE TABLE deployment_stages (
    workflow_id       text        NOT NULL,
    run_id            text        NOT NULL,
    stage_index       integer     NOT NULL,
    name              text        NOT NULL DEFAULT '',
    strategy          text        NOT NULL DEFAULT '',
    target_percent    integer     NOT NULL DEFAULT 0,
    target_new        integer     NOT NULL DEFAULT 0,
    target_total      integer     NOT NULL DEFAULT 0,
    status            text        NOT NULL DEFAULT '',
    checks_passed     integer     NOT NULL DEFAULT 0,
    checks_failed     integer     NOT NULL DEFAULT 0,
    rounds_healthy    integer     NOT NULL DEFAULT 0,
    rounds_degraded   integer     NOT NULL DEFAULT 0,
    rounds_failed     integer     NOT NULL DEFAULT 0,
    rounds_no_data    integer     NOT NULL DEFAULT 0,
    instances_updated integer     NOT NULL DEFAULT 0,
    instances_total   integer     NOT NULL DEFAULT 0,
    error             text        NOT NULL DEFAULT '',
    started_at        timestamptz,
    completed_at      timestamptz,
    PRIMARY KEY (workflow_id, run_id, stage_index)
);

-- The primary key serves "a run's events in order".
CREATE TABLE deployment_events (
    workflow_id text        NOT NULL,
    run_id      text        NOT NULL,
    seq         bigint      NOT NULL,
    at          timestamptz NOT NULL,
    kind        text        NOT NULL,
    stage_index integer,
    action      text        NOT NULL DEFAULT '',
    from_state  text        NOT NULL DEFAULT '',
    to_state    text        NOT NULL DEFAULT '',
    via         text        NOT NULL DEFAULT '',
    by_whom     text        NOT NULL DEFAULT '',
    reason      text        NOT NULL DEFAULT '',
    accepted    boolean     NOT NULL DEFAULT false,
    error       text        NOT NULL DEFAULT '',
    PRIMARY KEY (workflow_id, run_id, seq)
);

-- One row per check result of a round; a round without results has one row
-- with result_index -1 and check_name '', so no round is lost. The primary
-- key serves "a run's rounds".
CREATE TABLE check_rounds (
    workflow_id   text             NOT NULL,
    run_id        text             NOT NULL,
    activity_id   text             NOT NULL,
    round_seq     integer          NOT NULL,
    result_index  integer          NOT NULL CHECK (result_index >= -1),
    stage         text             NOT NULL DEFAULT '',
    which         text             NOT NULL DEFAULT '',
    at            timestamptz      NOT NULL,
    round_verdict text             NOT NULL,
    check_name    text             NOT NULL DEFAULT '',
    target        text             NOT NULL DEFAULT '',
    verdict       text             NOT NULL DEFAULT '',
    latency_ms    double precision NOT NULL DEFAULT 0,
    status_code   integer,
    exit_code     integer,
    value         double precision,
    error         text             NOT NULL DEFAULT '',
    excerpt       text             NOT NULL DEFAULT '',
    PRIMARY KEY (workflow_id, run_id, activity_id, round_seq, result_index)
);

-- +goose Down
DROP TABLE check_rounds;
DROP TABLE deployment_events;
DROP TABLE deployment_stages;
DROP TABLE deployment_plans;
