-- Photos and variants themselves, when BLOB_STORE=postgres (package pgblob)
-- keeps them here rather than on a volume, so that imageproc's replicas may
-- run on any node. Created whichever store is chosen: switching is then a
-- setting, not a migration. One row a blob, named by the SHA-256 of its
-- bytes, inserted whole by one statement: whole or absent. bytea rather
-- than large objects: see package pgblob.
CREATE TABLE blobs (
    sha256       text        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size         bigint      NOT NULL,
    -- When these bytes were last committed: committing bytes already
    -- stored moves it, and garbage collection spares recent blobs.
    committed_at timestamptz NOT NULL DEFAULT now(),
    data         bytea       NOT NULL,
    CHECK (size = octet_length(data))
);
-- Out of line and uncompressed: photos are compressed already, and an
-- uncompressed value lets substring() read a blob a chunk at a time,
-- fetching only that chunk's TOAST pages, so readers stream it.
ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;
