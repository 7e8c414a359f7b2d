-- A ledger written by batch-gitops 0.1.0 (schema 1), as `sqlite3 .dump`: the migration
-- test opens it with the current controller.
BEGIN TRANSACTION;
CREATE TABLE actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pass_id TEXT NOT NULL,
    at REAL NOT NULL,
    action TEXT NOT NULL,
    kind TEXT NOT NULL,
    queue TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL,
    manifest TEXT NOT NULL DEFAULT '',
    revision TEXT NOT NULL DEFAULT '',
    author TEXT NOT NULL DEFAULT '',
    committed_at REAL NOT NULL DEFAULT 0,
    result TEXT NOT NULL,
    aws_id TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT ''
);
INSERT INTO "actions" VALUES(1,'p1',1.79599902807591533656e+09,'submit','job','test-queue','alpha','jobs/alpha.json','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','',0.0,'ok','job-1','');
CREATE TABLE definitions (
    arn TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    revision INTEGER NOT NULL,
    manifest TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    author TEXT NOT NULL DEFAULT '',
    prune INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL,           -- ACTIVE | INACTIVE
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
INSERT INTO "definitions" VALUES('arn:aws:batch:us-east-1:123456789012:job-definition/worker:1','worker',1,'defs/worker.json','d1','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','',1,'ACTIVE',1.79599902807585096358e+09,1.79599902807585096358e+09);
CREATE TABLE jobs (
    token TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    manifest TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    revision TEXT NOT NULL,
    author TEXT NOT NULL DEFAULT '',
    committed_at REAL NOT NULL DEFAULT 0,
    job_id TEXT,
    state TEXT NOT NULL,            -- intent | submitted | rejected | lost
    status TEXT,                    -- last AWS status seen
    status_reason TEXT,
    array_summary TEXT,
    prune INTEGER NOT NULL DEFAULT 1,
    is_current INTEGER NOT NULL DEFAULT 1,
    retired INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
INSERT INTO "jobs" VALUES('t1','test-queue','alpha','jobs/alpha.json','h1','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','Ada <ada@example.com>',1700000000.0,'job-1','submitted','RUNNING',NULL,NULL,1,1,0,NULL,1.79599902806351184843e+09,1.79599902807069778439e+09);
INSERT INTO "jobs" VALUES('t2','test-queue','beta','jobs/beta.json','h2','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','Ada <ada@example.com>',1700000000.0,'job-2','submitted','SUCCEEDED',NULL,NULL,1,1,0,NULL,1.79599902807080602645e+09,1.79599902807580161095e+09);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('schema_version','1');
INSERT INTO "meta" VALUES('last_applied_revision','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa');
CREATE TABLE passes (
    pass_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    finished_at REAL,
    revision TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX jobs_current ON jobs (queue, name, is_current);
CREATE INDEX jobs_job_id ON jobs (job_id);
CREATE INDEX jobs_revision ON jobs (revision);
CREATE INDEX jobs_manifest ON jobs (manifest);
CREATE INDEX definitions_name ON definitions (name, status);
CREATE INDEX actions_revision ON actions (revision);
CREATE INDEX actions_manifest ON actions (manifest);
CREATE INDEX actions_aws_id ON actions (aws_id);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('actions',1);
COMMIT;
