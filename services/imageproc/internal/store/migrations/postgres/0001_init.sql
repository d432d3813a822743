-- imageproc's schema. Migrations run in order, each once, inside a
-- transaction holding an advisory lock, so several initContainers starting
-- together apply them exactly once.

CREATE TABLE images (
    id           text PRIMARY KEY,
    filename     text        NOT NULL,
    content_type text        NOT NULL,
    size_bytes   bigint      NOT NULL,
    width        integer     NOT NULL,
    height       integer     NOT NULL,
    sha256       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX images_sha256 ON images (sha256);

CREATE TABLE variants (
    image_id     text        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    spec         text        NOT NULL,
    content_type text        NOT NULL,
    size_bytes   bigint      NOT NULL,
    width        integer     NOT NULL,
    height       integer     NOT NULL,
    sha256       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_id, spec)
);
CREATE INDEX variants_sha256 ON variants (sha256);

CREATE TABLE batches (
    id         text PRIMARY KEY,
    spec       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasks (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id         text    NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    image_id         text    NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    spec             text    NOT NULL,
    state            text    NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'leased', 'done', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    lease_owner      text,
    lease_expires_at timestamptz,
    last_error       text    NOT NULL DEFAULT ''
);
-- The claim query walks this partial index: only unfinished tasks are in
-- it, so claiming stays fast however many finished tasks pile up.
CREATE INDEX tasks_open ON tasks (id) WHERE state IN ('pending', 'leased');
CREATE INDEX tasks_batch ON tasks (batch_id, state);
CREATE INDEX tasks_image ON tasks (image_id);
