-- The extension, and helpers the other tests share.
CREATE EXTENSION nango;
SELECT extname, extversion FROM pg_extension WHERE extname = 'nango';

-- URL of the test API server that test/run started (the port varies).
CREATE FUNCTION api(path text) RETURNS text LANGUAGE sql STABLE
AS $$ SELECT current_setting('nango_test.api_url') || path $$;

-- Text with the test API's address (its port varies) written as <api>,
-- and curl's timings as N ms.
CREATE FUNCTION without_port(t text) RETURNS text LANGUAGE sql STABLE
AS $$ SELECT regexp_replace(replace(t, api(''), '<api>'),
							'[0-9]+ ms', 'N ms', 'g') $$;

-- Runs a statement that must fail and shows its error with run ids and
-- other numbers that vary between runs written as N.
CREATE FUNCTION expect_error(statement text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE statement;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9]+', 'N', 'g');
END $$;

-- Waits (at most a minute) until the sync has a finished run and returns
-- the newest one.
CREATE FUNCTION wait_for_sync(sync_name text) RETURNS nango.sync_runs
LANGUAGE plpgsql AS $$
DECLARE
	run nango.sync_runs;
BEGIN
	FOR i IN 1..1200 LOOP
		SELECT r.* INTO run FROM nango.sync_runs r
		JOIN nango.syncs s ON s.id = r.sync_id
		WHERE s.name = sync_name AND r.status IN ('success', 'error')
		ORDER BY r.id DESC LIMIT 1;
		IF FOUND THEN
			RETURN run;
		END IF;
		PERFORM pg_sleep(0.05);
	END LOOP;
	RAISE EXCEPTION 'sync % has no finished run after a minute', sync_name;
END $$;

-- Queues a run of the sync, commits so the worker sees it, and waits for
-- it to finish.
CREATE PROCEDURE run_sync(sync_name text)
LANGUAGE plpgsql AS $$
DECLARE
	run_id bigint;
BEGIN
	run_id := nango.trigger_sync(sync_name);
	COMMIT;
	PERFORM nango.wait_for_run(run_id);
END $$;

-- The newest finished run of each sync, without what varies with time.
CREATE VIEW last_run AS
SELECT DISTINCT ON (s.name) s.name, r.status, r.pages, r.records,
	   r.inserted, r.updated, r.unchanged, r.rejected, r.http_requests,
	   r.error
FROM nango.syncs s JOIN nango.sync_runs r ON r.sync_id = s.id
WHERE r.status IN ('success', 'error')
ORDER BY s.name, r.id DESC;
