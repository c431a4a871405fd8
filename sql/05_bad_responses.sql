-- A response that is not what the sync expects fails its run with a clear
-- error and leaves the table as it was.
CREATE TABLE items (id bigint PRIMARY KEY, item_name text);
INSERT INTO items VALUES (1, 'before');

CREATE FUNCTION try_response(sync_name text, path text,
							 paging jsonb DEFAULT NULL,
							 response_path text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM nango.add_sync(sync_name,
						   CASE WHEN path LIKE 'http%' THEN path ELSE api(path) END,
						   'items', paging => paging,
						   response_path => response_path);
END $$;
CREATE VIEW failure AS
SELECT l.name, l.status, l.pages,
	   without_port(split_part(l.error, E'\n', 1)) AS error,
	   (SELECT string_agg(id || ':' || item_name, ', ' ORDER BY id)
		FROM items) AS rows_in_table
FROM last_run l WHERE l.name <> 'gh_issues';

SELECT try_response('html', '/fault/html');
SELECT try_response('not_json', '/fault/notjson');
SELECT try_response('empty', '/fault/empty');
SELECT try_response('scalar', '/fault/scalar');
SELECT try_response('status_500', '/fault/status?code=500');
SELECT try_response('status_404', '/nowhere');
SELECT try_response('no_array', '/fault/noarray');
SELECT try_response('two_arrays', '/fault/twoarrays');
SELECT try_response('wrong_path', '/v1/items', NULL, 'data.items');
SELECT try_response('refused', 'http://127.0.0.1:1/v1/items');
SELECT try_response('too_many_redirects', '/fault/redirect?n=8');
SELECT try_response('redirect_other_host', '/fault/redirect?n=2&host=127.0.0.2:9');
SELECT try_response('other_host', '/v1/next_url?next_host=127.0.0.2:9',
					'{"type": "next_url", "path": "links.next"}');

SELECT name, status FROM nango.syncs s, LATERAL wait_for_sync(s.name)
ORDER BY name;
SELECT * FROM failure WHERE name NOT LIKE 'loop%' ORDER BY name;

-- A pagination loop is found on the page that repeats; the pages before
-- it were written.
SELECT try_response('loop_next_url', '/fault/loop?type=next_url',
					'{"type": "next_url", "path": "links.next"}');
SELECT try_response('loop_cursor', '/fault/loop?type=cursor',
					'{"type": "cursor", "path": "meta.next", "param": "cursor"}');
SELECT try_response('loop_link', '/fault/loop?type=link',
					'{"type": "link_header"}');
SELECT try_response('loop_record', '/fault/loop?type=record_cursor',
					'{"type": "record_cursor", "field": "id",
					  "param": "starting_after", "has_more_path": "has_more"}');
-- An API that ignores the page parameter answers every page alike.
SELECT try_response('loop_page', '/v1/page',
					'{"type": "page", "page_param": "p",
					  "size_param": "per_page", "size": 10}');
SELECT name, status FROM nango.syncs s, LATERAL wait_for_sync(s.name)
WHERE name LIKE 'loop%' ORDER BY name;
SELECT * FROM failure WHERE name LIKE 'loop%' ORDER BY name;

-- The error's detail shows what came instead of JSON.
SELECT split_part(error, E'\n', 2) AS detail FROM last_run WHERE name = 'html';

-- A failing second page: the first page's rows are there, none of the
-- second's; the run says which page failed.
SELECT try_response('second_page', '/v1/page?fail_page=2',
					'{"type": "page", "size_param": "per_page", "size": 10}');
SELECT status, pages, without_port(error) AS error FROM wait_for_sync('second_page');
SELECT count(*) FROM items;

-- A response over nango.max_response_size fails the run.
ALTER SYSTEM SET nango.max_response_size = '64kB';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SELECT try_response('too_big', '/fault/big?size=200000');
SELECT status, without_port(error) AS error FROM wait_for_sync('too_big');
ALTER SYSTEM RESET nango.max_response_size;
SELECT pg_reload_conf();

-- A response small as text but huge once read (millions of empty objects)
-- fails the run before it takes the memory.
SELECT try_response('too_big_to_read', '/fault/big?size=20000000&shape=objects');
SELECT status, without_port(error) AS error FROM wait_for_sync('too_big_to_read');

SELECT count(*) FILTER (WHERE nango.remove_sync(name)) AS removed
FROM nango.syncs WHERE name <> 'gh_issues';
DROP VIEW failure;
DROP FUNCTION try_response;
DROP TABLE items;
