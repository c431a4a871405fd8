-- A run whose worker is terminated in the middle resumes from its last
-- committed page: the table ends equal to the source, no record lost or
-- written twice.  (test/t/001_interrupted_runs.pl kills the worker with
-- SIGKILL and restarts the server; a session of pg_regress would not
-- survive that.)
CREATE TABLE slow_items (id bigint PRIMARY KEY, item_name text, price numeric);
SELECT nango.add_sync('slow', api('/v1/slow_pages?per_page=5&delay=0.3'),
	'slow_items', frequency => '1 day',
	paging => '{"type": "page", "size_param": "per_page", "size": 5}')
	> 0 AS added;

-- Wait until three pages are in, then terminate the run's worker.
DO $$
BEGIN
	FOR i IN 1..600 LOOP
		EXIT WHEN (SELECT r.pages >= 3 FROM nango.sync_runs r
				   JOIN nango.syncs s ON s.id = r.sync_id
				   WHERE s.name = 'slow');
		PERFORM pg_sleep(0.05);
	END LOOP;
END $$;
CREATE VIEW slow_run AS
SELECT r.* FROM nango.sync_runs r JOIN nango.syncs s ON s.id = r.sync_id
WHERE s.name = 'slow';
SELECT pages >= 3 AS some_pages_in, records = pages * 5 AS whole_pages_only
FROM slow_run;
SELECT count(*) = (SELECT pages * 5 FROM slow_run) AS table_has_whole_pages
FROM slow_items;
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE backend_type = 'nango run' AND query LIKE 'nango sync "slow"%';

-- The scheduler resumes it; it finishes with every record once.
SELECT status, pages, records, inserted, updated, unchanged, resumes
FROM wait_for_sync('slow');
SELECT count(*), count(DISTINCT id), min(id), max(id) FROM slow_items;

SELECT nango.remove_sync('slow');
DROP VIEW slow_run;
DROP TABLE slow_items;
