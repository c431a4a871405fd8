-- Every malformed argument of add_sync is refused at once, naming the
-- argument, and leaves nothing behind.
CREATE TABLE bad_target (id bigint PRIMARY KEY, name text, n int);
CREATE TABLE no_key (id bigint, name text);
\set VERBOSITY default

-- url
SELECT nango.add_sync('s', 'ftp://127.0.0.1/x', 'bad_target');
SELECT nango.add_sync('s', 'not a url', 'bad_target');
SELECT nango.add_sync('s', '/relative/path', 'bad_target');
SELECT nango.add_sync('s', 'http:///127.0.0.1/x', 'bad_target');
SELECT nango.add_sync('s', 'http:/127.0.0.1/x', 'bad_target');
SELECT nango.add_sync('s', api('/') || repeat('x', 9000), 'bad_target');
SELECT nango.add_sync('s', NULL, 'bad_target');

-- name
SELECT nango.add_sync('', api('/v1/single'), 'bad_target');
SELECT nango.add_sync(repeat('x', 64), api('/v1/single'), 'bad_target');

-- target_table and unique_key
SELECT nango.add_sync('s', api('/v1/single'), 'missing_table');
SELECT nango.add_sync('s', api('/v1/single'), 'no_key');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', unique_key => '{name}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', unique_key => '{nope}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', unique_key => '{}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', unique_key => '{id,id}');
SELECT nango.add_sync('s', api('/v1/single'), 'pg_class', unique_key => '{oid}');
SELECT nango.add_sync('s', api('/v1/single'), 'nango.syncs');
CREATE TEMP TABLE temp_target (id bigint PRIMARY KEY);
SELECT nango.add_sync('s', api('/v1/single'), 'temp_target');
CREATE VIEW view_target AS SELECT * FROM bad_target;
SELECT nango.add_sync('s', api('/v1/single'), 'view_target');
DROP VIEW view_target;

-- frequency
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', frequency => '-5 minutes');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', frequency => '0');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', frequency => '500 milliseconds');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', frequency => '1000000 years');

-- method, headers, query_params, body
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', method => 'DELETE');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', headers => '["x"]');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', headers => '{"X-Count": 3}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', headers => '{"Bad Name": "x"}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', headers => '{"content-length": "5"}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', headers => '{"X-Trace": "a\u0001b"}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target',
	query_params => jsonb_build_object('q', repeat('x', 9000)));
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', query_params => '{"a": {"b": 1}}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', body => '{"a": 1}');

-- response_path and columns
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', response_path => 'data..items');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', response_path => '');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', columns => '{"nope": "x"}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', columns => '{"name": 5}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', columns => '["name"]');

-- paging
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', paging => '{"type": "telepathy"}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', paging => '{"path": "next"}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', paging => '{"type": "next_url"}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', paging => '{"type": "cursor", "path": "meta.next"}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', paging => '{"type": "offset", "limit": 0}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', paging => '{"type": "offset", "offset_param": "x", "limit_param": "x"}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', paging => '{"type": "page", "size_param": "page", "size": 10}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', paging => '{"type": "page", "size_param": "per_page"}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', paging => '{"type": "link_header", "max_pages": -1}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', paging => '{"type": "link_header", "colour": "red"}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', paging => '{"type": "cursor", "path": "next", "param": "c", "in": "body"}');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', paging => '"link_header"');
SELECT nango.add_sync('s', api('/v1/single'), 'bad_target', paging => '{"type": "offset", "limit": 99999999999999999999}');

-- a duplicate name
SELECT nango.add_sync('taken', api('/v1/single'), 'bad_target', frequency => '1 day') > 0 AS added;
SELECT nango.add_sync('taken', api('/v1/single'), 'bad_target');

-- nothing was left behind but the one good sync
SELECT name FROM nango.syncs;
SELECT nango.remove_sync('taken');
SELECT nango.remove_sync('taken');

-- the other functions
SELECT nango.pause_sync('nope');
SELECT nango.resume_sync('nope');
SELECT nango.trigger_sync('nope');
SELECT nango.wait_for_run(-1);
SELECT nango.remove_sync(NULL);
SELECT nango.pause_sync(NULL);
SELECT nango.trigger_sync('nope', NULL);
SELECT nango.wait_for_run(NULL);
SELECT nango.wait_for_run(1, NULL);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT nango.wait_for_run(1);
ROLLBACK;
-- The SQLSTATE of each kind of refusal.
CREATE VIEW view_target AS SELECT * FROM bad_target;
SELECT split_part(expect_error(statement), ':', 1) AS sqlstate, statement
FROM (VALUES
	($$SELECT nango.add_sync('s', 'ftp://127.0.0.1/x', 'bad_target')$$),
	($$SELECT nango.add_sync('s', NULL, 'bad_target')$$),
	($$SELECT nango.add_sync('s', api('/x'), 'missing_table')$$),
	($$SELECT nango.add_sync('s', api('/x'), 'view_target')$$),
	($$SELECT nango.add_sync('s', api('/x'), 'no_key')$$),
	($$SELECT nango.add_sync('s', api('/x'), 'bad_target', unique_key => '{nope}')$$),
	($$SELECT nango.add_sync('s', api('/x'), 'bad_target', frequency => '0')$$),
	($$SELECT nango.add_sync('s', api('/x'), 'bad_target', method => 'DELETE')$$),
	($$SELECT nango.add_sync('s', api('/x'), 'bad_target', columns => '{"nope": "x"}')$$),
	($$SELECT nango.add_sync('s', api('/x'), 'bad_target', paging => '{"type": "telepathy"}')$$),
	($$SELECT nango.pause_sync('nope')$$),
	($$SELECT nango.wait_for_run(-1)$$)) AS v(statement);
DROP VIEW view_target;
SELECT count(*) FROM nango.syncs;
DROP TABLE bad_target, no_key;
