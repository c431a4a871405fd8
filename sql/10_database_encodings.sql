-- A database whose encoding is not UTF-8: the API's UTF-8 text reaches it
-- converted, and a character it cannot hold fails its page.
SELECT current_database() AS regress_db,
	   current_setting('nango_test.api_url') AS api_url \gset
CREATE DATABASE nango_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'
	TEMPLATE template0;
\c nango_latin1
SET client_encoding = 'UTF8';
-- trigger_sync says so when the first run is still queued: not shown.
SET client_min_messages = warning;
CREATE EXTENSION nango;

-- /echo answers with the query string it was sent; the name is "Café ½".
CREATE TABLE echoes (id bigint PRIMARY KEY, query jsonb, name text);
SELECT nango.add_sync('latin1', :'api_url' || '/echo?name=Caf%C3%A9%20%C2%BD',
	'echoes', columns => '{"name": "query.name"}') > 0 AS added;
SELECT nango.trigger_sync('latin1') AS run_id \gset
SELECT status, records, inserted, error FROM nango.wait_for_run(:run_id);
SELECT name, convert_to(name, 'LATIN1') AS latin1_bytes, query->>'name' AS query
FROM echoes;

-- A hot beverage (U+2615) has no LATIN1 form: the run fails, nothing is
-- written.
SELECT nango.add_sync('beverage', :'api_url' || '/echo?id=2&name=%E2%98%95',
	'echoes', columns => '{"name": "query.name"}') > 0 AS added;
SELECT nango.trigger_sync('beverage') AS run_id \gset
SELECT status, records, error FROM nango.wait_for_run(:run_id);
SELECT id, name FROM echoes ORDER BY id;

-- Keys that are not ASCII: the records under "dätä", found without a
-- response_path, and a column fed from "query.näme".
TRUNCATE echoes;
SELECT nango.add_sync('keys', :'api_url' ||
	'/echo?id=3&wrap=d%C3%A4t%C3%A4&n%C3%A4me=%C3%A9t%C3%A9', 'echoes',
	columns => '{"name": "query.näme"}') > 0 AS added;
SELECT nango.trigger_sync('keys') AS run_id \gset
SELECT status, records, error FROM nango.wait_for_run(:run_id);
SELECT id, name, convert_to(name, 'LATIN1') AS latin1_bytes FROM echoes;
-- A path that jansson reads must be ASCII here.
SELECT nango.add_sync('path', :'api_url' || '/echo', 'echoes',
	response_path => 'dätä');
SELECT nango.add_sync('path', :'api_url' || '/echo', 'echoes',
	paging => '{"type": "next_url", "path": "lïnks.next"}');

\c :regress_db
DROP DATABASE nango_latin1;
