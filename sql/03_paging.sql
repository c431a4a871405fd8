-- Every paging type, and each of the conditions that ends a run.  The API
-- serves the same 25 items through each; a run reads them all, once.
CREATE TABLE items (id bigint PRIMARY KEY, item_name text, price numeric,
					quantity int, big numeric, view_count bigint,
					created_at timestamptz, login text, note text);

-- Adds a sync, waits for its first run, reports it and empties the table.
CREATE FUNCTION try_paging(sync_name text, path text, paging jsonb,
						   response_path text DEFAULT NULL,
						   method text DEFAULT 'GET', body jsonb DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM nango.add_sync(sync_name, api(path), 'items',
						   frequency => '1 day', paging => paging,
						   response_path => response_path,
						   method => method, body => body);
END $$;
CREATE VIEW paging_report AS
SELECT l.name, l.status, l.pages, l.records, l.http_requests, l.error,
	   (SELECT count(*) FROM items) AS rows_in_table
FROM last_run l;

-- link_header, with relative URLs in the Link header.
SELECT try_paging('link', '/v1/link?limit=10', '{"type": "link_header"}');
SELECT status FROM wait_for_sync('link');
SELECT * FROM paging_report WHERE name = 'link';
TRUNCATE items;

-- next_url: absolute, then relative; the last page says null, "" or nothing.
SELECT try_paging('next_abs', '/v1/next_url?limit=10',
				  '{"type": "next_url", "path": "links.next"}');
SELECT status FROM wait_for_sync('next_abs');
SELECT * FROM paging_report WHERE name = 'next_abs';
TRUNCATE items;
SELECT try_paging('next_rel', '/v1/next_url?limit=10&relative=1&end=empty',
				  '{"type": "next_url", "path": "links.next"}');
SELECT status FROM wait_for_sync('next_rel');
SELECT * FROM paging_report WHERE name = 'next_rel';
TRUNCATE items;
SELECT try_paging('next_absent', '/v1/next_url?limit=10&end=absent',
				  '{"type": "next_url", "path": "links.next"}');
SELECT status FROM wait_for_sync('next_absent');
SELECT * FROM paging_report WHERE name = 'next_absent';
TRUNCATE items;
-- An API that always gives a next URL: the empty page after the last ends it.
SELECT try_paging('next_always', '/v1/next_url?limit=10&always_next=1',
				  '{"type": "next_url", "path": "links.next"}');
SELECT status FROM wait_for_sync('next_always');
SELECT * FROM paging_report WHERE name = 'next_always';
TRUNCATE items;

-- cursor in the query, then has_more false ends it.
SELECT try_paging('cursor', '/v1/cursor?limit=10',
				  '{"type": "cursor", "path": "meta.next", "param": "cursor"}');
SELECT status FROM wait_for_sync('cursor');
SELECT * FROM paging_report WHERE name = 'cursor';
TRUNCATE items;
SELECT try_paging('cursor_more', '/v1/cursor?limit=10&always_next=1',
				  '{"type": "cursor", "path": "meta.next", "param": "cursor",
					"has_more_path": "meta.has_more"}');
SELECT status FROM wait_for_sync('cursor_more');
SELECT * FROM paging_report WHERE name = 'cursor_more';
TRUNCATE items;

-- cursor in the JSON body of a POST.
SELECT try_paging('cursor_body', '/v1/cursor_body',
				  '{"type": "cursor", "path": "meta.next", "param": "cursor",
					"in": "body"}',
				  method => 'POST', body => '{"limit": 10}');
SELECT status FROM wait_for_sync('cursor_body');
SELECT * FROM paging_report WHERE name = 'cursor_body';
TRUNCATE items;

-- record_cursor: has_more false ends it; without has_more, the empty page.
SELECT try_paging('record_cursor', '/v1/record_cursor?limit=10',
				  '{"type": "record_cursor", "field": "id",
					"param": "starting_after", "has_more_path": "has_more"}');
SELECT status FROM wait_for_sync('record_cursor');
SELECT * FROM paging_report WHERE name = 'record_cursor';
TRUNCATE items;
SELECT try_paging('record_cursor_empty', '/v1/record_cursor?limit=10',
				  '{"type": "record_cursor", "field": "id",
					"param": "starting_after"}');
SELECT status FROM wait_for_sync('record_cursor_empty');
SELECT * FROM paging_report WHERE name = 'record_cursor_empty';
TRUNCATE items;

-- offset: the short page ends it; then a total that is reached first.
SELECT try_paging('offset', '/v1/offset',
				  '{"type": "offset", "offset_param": "offset",
					"limit_param": "limit", "limit": 10}',
				  response_path => 'results.items');
SELECT status FROM wait_for_sync('offset');
SELECT * FROM paging_report WHERE name = 'offset';
TRUNCATE items;
SELECT try_paging('offset_total', '/v1/offset?total=15',
				  '{"type": "offset", "limit": 5, "total_path": "total"}',
				  response_path => 'results.items');
SELECT status FROM wait_for_sync('offset_total');
SELECT * FROM paging_report WHERE name = 'offset_total';
TRUNCATE items;

-- page: the short page ends it; an exact multiple ends on the empty page;
-- max_pages caps it.
SELECT try_paging('page', '/v1/page',
				  '{"type": "page", "page_param": "page", "start": 1,
					"size_param": "per_page", "size": 10}');
SELECT status FROM wait_for_sync('page');
SELECT * FROM paging_report WHERE name = 'page';
TRUNCATE items;
SELECT try_paging('page_exact', '/v1/page?count=20',
				  '{"type": "page", "size_param": "per_page", "size": 10}');
SELECT status FROM wait_for_sync('page_exact');
SELECT * FROM paging_report WHERE name = 'page_exact';
TRUNCATE items;
SELECT try_paging('page_max', '/v1/page',
				  '{"type": "page", "size_param": "per_page", "size": 10,
					"max_pages": 2}');
SELECT status FROM wait_for_sync('page_max');
SELECT * FROM paging_report WHERE name = 'page_max';
TRUNCATE items;

-- No paging: one request.
SELECT try_paging('one_request', '/v1/items', NULL);
SELECT status FROM wait_for_sync('one_request');
SELECT * FROM paging_report WHERE name = 'one_request';

-- The stop conditions with the other types, all syncs at once: max_pages
-- with each type; the empty page after the last for link_header, cursor
-- and offset; an empty cursor and a record without the cursor's field;
-- total_path with page paging; an API that ignores the offset.
CREATE TABLE stop_cases (name text, path text, paging jsonb,
						 response_path text);
INSERT INTO stop_cases VALUES
	('link_max', '/v1/link?limit=10', '{"type": "link_header", "max_pages": 2}', NULL),
	('link_empty', '/v1/link?limit=5&count=10&always_next=1', '{"type": "link_header"}', NULL),
	('next_max', '/v1/next_url?limit=10', '{"type": "next_url", "path": "links.next", "max_pages": 1}', NULL),
	('cursor_max', '/v1/cursor?limit=10', '{"type": "cursor", "path": "meta.next", "param": "cursor", "max_pages": 2}', NULL),
	('cursor_empty', '/v1/cursor?limit=5&count=10&always_next=1', '{"type": "cursor", "path": "meta.next", "param": "cursor"}', NULL),
	('cursor_blank', '/v1/cursor?limit=10&end=empty', '{"type": "cursor", "path": "meta.next", "param": "cursor"}', NULL),
	('record_max', '/v1/record_cursor?limit=10', '{"type": "record_cursor", "field": "id", "param": "starting_after", "max_pages": 1}', NULL),
	('record_nofield', '/v1/record_cursor?limit=10', '{"type": "record_cursor", "field": "serial", "param": "starting_after"}', NULL),
	('offset_max', '/v1/offset', '{"type": "offset", "limit": 10, "max_pages": 2}', 'results.items'),
	('offset_empty', '/v1/offset?count=20', '{"type": "offset", "limit": 10}', 'results.items'),
	('offset_ignored', '/v1/items', '{"type": "offset", "limit": 5}', NULL),
	('page_total', '/v1/page?total=15', '{"type": "page", "size": 10, "total_path": "total"}', NULL);
SELECT count(*) AS added FROM stop_cases
WHERE nango.add_sync(name, api(path), 'items', frequency => '1 day',
					 paging => paging, response_path => response_path) > 0;
SELECT c.name, w.status, w.pages, w.records, w.http_requests,
	   without_port(w.error) AS error
FROM stop_cases c, LATERAL wait_for_sync(c.name) w ORDER BY c.name;
DROP TABLE stop_cases;

SELECT count(*) FILTER (WHERE nango.remove_sync(name)) AS removed
FROM nango.syncs WHERE name <> 'gh_issues';
DROP VIEW paging_report;
DROP FUNCTION try_paging;
DROP TABLE items;
