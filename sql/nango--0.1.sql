-- nango 0.1: catalog and SQL interface.
\echo Use "CREATE EXTENSION nango" to load this file. \quit

-- One row a sync: what to pull, from where, into which table.
CREATE TABLE nango.syncs (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name			text NOT NULL UNIQUE,
	owner			regrole NOT NULL,
	url				text NOT NULL,
	method			text NOT NULL,
	headers			jsonb NOT NULL,
	query_params	jsonb NOT NULL,
	body			jsonb,
	target_table	regclass NOT NULL,
	unique_key		text[] NOT NULL,
	frequency		interval NOT NULL,
	response_path	text,
	paging			jsonb,
	columns			jsonb,
	paused			boolean NOT NULL DEFAULT false,
	created_at		timestamptz NOT NULL DEFAULT now(),
	next_run_at		timestamptz
);

-- One row a run of a sync, kept for the newest nango.run_history runs.
CREATE TABLE nango.sync_runs (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	sync_id			bigint NOT NULL REFERENCES nango.syncs ON DELETE CASCADE,
	status			text NOT NULL DEFAULT 'queued'
		CHECK (status IN ('queued', 'running', 'success', 'error')),
	full_refresh	boolean NOT NULL DEFAULT true,
	queued_at		timestamptz NOT NULL DEFAULT now(),
	started_at		timestamptz,
	finished_at		timestamptz,
	pages			integer NOT NULL DEFAULT 0,
	records			bigint NOT NULL DEFAULT 0,
	inserted		bigint NOT NULL DEFAULT 0,
	updated			bigint NOT NULL DEFAULT 0,
	unchanged		bigint NOT NULL DEFAULT 0,
	rejected		bigint NOT NULL DEFAULT 0,
	http_requests	integer NOT NULL DEFAULT 0,
	resumes			integer NOT NULL DEFAULT 0,
	checkpoint		jsonb,
	error			text
);
CREATE INDEX sync_runs_sync_id_idx ON nango.sync_runs (sync_id, id);
-- At most one queued or running run a sync.
CREATE UNIQUE INDEX sync_runs_one_active_idx ON nango.sync_runs (sync_id)
	WHERE status IN ('queued', 'running');

-- Records a run could not write, with the reason; at most a thousand a run.
CREATE TABLE nango.rejected_records (
	run_id			bigint NOT NULL REFERENCES nango.sync_runs ON DELETE CASCADE,
	sync_id			bigint NOT NULL,
	page			integer NOT NULL,
	record			jsonb NOT NULL,
	error			text NOT NULL,
	rejected_at		timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rejected_records_run_id_idx ON nango.rejected_records (run_id);

-- pg_dump keeps the syncs (not their runs): a restored database syncs on.
SELECT pg_catalog.pg_extension_config_dump('nango.syncs', '');
SELECT pg_catalog.pg_extension_config_dump('nango.syncs_id_seq', '');

-- Users read their own syncs; only nango's functions write.
REVOKE ALL ON nango.syncs, nango.sync_runs, nango.rejected_records FROM PUBLIC;
GRANT SELECT ON nango.syncs, nango.sync_runs, nango.rejected_records TO PUBLIC;
ALTER TABLE nango.syncs ENABLE ROW LEVEL SECURITY;
ALTER TABLE nango.sync_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE nango.rejected_records ENABLE ROW LEVEL SECURITY;
CREATE POLICY syncs_owner ON nango.syncs
	USING (pg_has_role(owner, 'USAGE'));
CREATE POLICY sync_runs_owner ON nango.sync_runs
	USING (EXISTS (SELECT 1 FROM nango.syncs s WHERE s.id = sync_id));
CREATE POLICY rejected_records_owner ON nango.rejected_records
	USING (EXISTS (SELECT 1 FROM nango.syncs s WHERE s.id = sync_id));

CREATE FUNCTION nango.add_sync(
	name			text,
	url				text,
	target_table	text,
	unique_key		text[] DEFAULT '{id}',
	frequency		interval DEFAULT '1 hour',
	method			text DEFAULT 'GET',
	headers			jsonb DEFAULT '{}',
	query_params	jsonb DEFAULT '{}',
	body			jsonb DEFAULT NULL,
	response_path	text DEFAULT NULL,
	paging			jsonb DEFAULT NULL,
	columns			jsonb DEFAULT NULL)
RETURNS bigint
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'nango_add_sync';

CREATE FUNCTION nango.remove_sync(name text) RETURNS boolean
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'nango_remove_sync';

CREATE FUNCTION nango.pause_sync(name text) RETURNS void
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'nango_pause_sync';

CREATE FUNCTION nango.resume_sync(name text) RETURNS void
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'nango_resume_sync';

CREATE FUNCTION nango.trigger_sync(name text, full_refresh boolean DEFAULT false)
RETURNS bigint
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'nango_trigger_sync';

CREATE FUNCTION nango.wait_for_run(run_id bigint,
								   timeout interval DEFAULT '1 minute')
RETURNS nango.sync_runs
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'nango_wait_for_run';

-- One row a sync: what it is doing, how its last runs went, when it runs next.
CREATE VIEW nango.sync_status WITH (security_invoker = true) AS
SELECT s.id,
	   s.name,
	   s.target_table,
	   CASE WHEN s.paused THEN 'paused'
			WHEN active.status IS NOT NULL THEN active.status
			ELSE 'idle' END AS state,
	   last.id AS last_run_id,
	   last.status AS last_run_status,
	   last.started_at AS last_run_started_at,
	   last.finished_at AS last_run_finished_at,
	   ok.finished_at AS last_success_at,
	   bad.finished_at AS last_error_at,
	   bad.error AS last_error,
	   CASE WHEN s.paused THEN NULL ELSE s.next_run_at END AS next_run_at
FROM nango.syncs s
LEFT JOIN LATERAL (SELECT r.status FROM nango.sync_runs r
				   WHERE r.sync_id = s.id AND r.status IN ('queued', 'running')
				   LIMIT 1) active ON true
LEFT JOIN LATERAL (SELECT r.* FROM nango.sync_runs r
				   WHERE r.sync_id = s.id AND r.status IN ('success', 'error')
				   ORDER BY r.id DESC LIMIT 1) last ON true
LEFT JOIN LATERAL (SELECT r.finished_at FROM nango.sync_runs r
				   WHERE r.sync_id = s.id AND r.status = 'success'
				   ORDER BY r.id DESC LIMIT 1) ok ON true
LEFT JOIN LATERAL (SELECT r.finished_at, r.error FROM nango.sync_runs r
				   WHERE r.sync_id = s.id AND r.status = 'error'
				   ORDER BY r.id DESC LIMIT 1) bad ON true;
GRANT SELECT ON nango.sync_status TO PUBLIC;

-- Wakes this database's scheduler when CREATE EXTENSION commits.
CREATE FUNCTION nango.start_scheduler() RETURNS void
LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'nango_start_scheduler';
REVOKE ALL ON FUNCTION nango.start_scheduler() FROM PUBLIC;
SELECT nango.start_scheduler();
