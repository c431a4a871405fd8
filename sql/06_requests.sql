-- What a sync sends: method, headers, query parameters and body.
CREATE TABLE echoes (id bigint PRIMARY KEY, method text, query jsonb,
					 headers jsonb, body jsonb);

SELECT nango.add_sync('echo_get', api('/echo?fixed=1'), 'echoes',
	headers => '{"Authorization": "Bearer test-token", "X-Trace": "t-1"}',
	query_params => '{"q": "a b&c", "n": 19.99, "flag": true, "k=&+": "v=&+"}')
	> 0 AS added;
SELECT status, records FROM wait_for_sync('echo_get');
SELECT method, query, headers->'authorization' AS authorization,
	   headers->'x-trace' AS trace, headers->'accept' AS accept,
	   headers->'user-agent' AS user_agent, body
FROM echoes;
SELECT nango.remove_sync('echo_get');
TRUNCATE echoes;

SELECT nango.add_sync('echo_post', api('/echo'), 'echoes', method => 'post',
	body => '{"filter": {"state": "open"}, "limit": 50, "big": 18446744073709551617}')
	> 0 AS added;
SELECT status, records FROM wait_for_sync('echo_post');
SELECT method, headers->'content-type' AS content_type, body FROM echoes;
SELECT nango.remove_sync('echo_post');

-- Authentication: the header is sent, and a wrong one fails the run.
CREATE TABLE items (id bigint PRIMARY KEY, item_name text);
SELECT nango.add_sync('auth_ok', api('/v1/auth/items'), 'items',
	headers => '{"Authorization": "Bearer test-token"}') > 0 AS added;
SELECT status, records FROM wait_for_sync('auth_ok');
SELECT nango.add_sync('auth_bad', api('/v1/auth/apikey'), 'items',
	headers => '{"X-Api-Key": "wrong-key"}') > 0 AS added;
SELECT status, without_port(error) AS error FROM wait_for_sync('auth_bad');
SELECT nango.remove_sync('auth_ok'), nango.remove_sync('auth_bad');

-- query_params go with every page, also when the API's next page links
-- leave them out (its Link header here names only page and limit).
TRUNCATE items;
SELECT nango.add_sync('every_page', api('/v1/link?limit=10'), 'items',
					  paging => '{"type": "link_header"}',
					  query_params => '{"tag": "every-page"}') > 0 AS added;
SELECT status, pages, records FROM wait_for_sync('every_page');
\! python3 test/api_server.py get '/control/stats?tag=every-page'
SELECT nango.remove_sync('every_page');

-- PUT and PATCH send the body too; headers go with every page.
TRUNCATE echoes;
SELECT nango.add_sync('echo_put', api('/echo?id=7'), 'echoes', method => 'PUT',
	body => '{"state": "closed"}') > 0 AS added;
SELECT status, records FROM wait_for_sync('echo_put');
SELECT nango.add_sync('echo_patch', api('/echo?pages=3'), 'echoes',
	method => 'PATCH', body => '{"state": "open"}',
	headers => '{"X-Trace": "t-2"}',
	paging => '{"type": "page", "page_param": "page"}') > 0 AS added;
SELECT status, pages, records FROM wait_for_sync('echo_patch');
SELECT id, method, query, headers->'x-trace' AS trace, body FROM echoes
ORDER BY id;
SELECT nango.remove_sync('echo_put'), nango.remove_sync('echo_patch');

-- Redirects on the API's own host are followed (at most 5).
TRUNCATE items;
SELECT nango.add_sync('redirected', api('/fault/redirect?n=3&to=/v1/items'),
					  'items') > 0 AS added;
SELECT status, records, http_requests FROM wait_for_sync('redirected');
SELECT nango.remove_sync('redirected');
DROP TABLE echoes, items;
