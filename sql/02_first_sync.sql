-- The first thing a user tries: an issue tracker's paged API into a table,
-- pulled by the background worker from the commit of add_sync on.
CREATE TABLE issues (id bigint PRIMARY KEY, number int, title text,
					 state text, author text, labels jsonb,
					 created_at timestamptz, updated_at timestamptz);

SELECT nango.add_sync(
	name         => 'gh_issues',
	url          => api('/repos/acme/app/issues?per_page=50'),
	target_table => 'issues',
	unique_key   => '{id}',
	frequency    => '5 minutes',
	paging       => '{"type": "link_header"}',
	columns      => '{"author": "user.login"}') > 0 AS added;

-- 240 issues over 5 pages of 50, every one landed once.
SELECT status, pages, records, inserted, updated, unchanged, rejected,
	   http_requests, error
FROM wait_for_sync('gh_issues');
SELECT count(*), count(DISTINCT id), min(number), max(number) FROM issues;
SELECT number, title, state, author, labels->0->>'name' AS first_label,
	   created_at
FROM issues ORDER BY number LIMIT 5;

-- The sync, its state and when it runs next.
SELECT name, owner, target_table, frequency, paused FROM nango.syncs;
SELECT name, state, last_run_status, last_success_at IS NOT NULL AS succeeded,
	   last_error, next_run_at - last_run_started_at AS next_in
FROM nango.sync_status;

-- A second run finds nothing new: no row is rewritten.
CREATE TEMP TABLE before AS SELECT id, xmin::text AS row_version FROM issues;
CALL run_sync('gh_issues');
SELECT status, pages, records, inserted, updated, unchanged FROM last_run
WHERE name = 'gh_issues';
SELECT count(*) AS rewritten FROM issues i JOIN before b USING (id)
WHERE i.xmin::text <> b.row_version;

-- The API changes one issue: the next run updates that row alone.
\! python3 test/api_server.py post '/control/set?dataset=issues&number=7&field=title&value=Renamed%20issue' > /dev/null
CALL run_sync('gh_issues');
SELECT status, records, inserted, updated, unchanged FROM last_run
WHERE name = 'gh_issues';
SELECT number, title FROM issues WHERE number = 7;
SELECT count(*) AS rewritten FROM issues i JOIN before b USING (id)
WHERE i.xmin::text <> b.row_version;

-- The worker shows itself in pg_stat_activity.
SELECT backend_type FROM pg_stat_activity
WHERE backend_type LIKE 'nango%' AND backend_type <> 'nango run'
  AND (datname IS NULL OR datname = current_database())
ORDER BY 1;

\! python3 test/api_server.py post /control/reset > /dev/null
