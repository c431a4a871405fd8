-- How a record becomes a row: columns by name, by snake_case and by path;
-- exact numbers; absent keys and nulls; repeated and rejected records.
CREATE TABLE items (
	id bigint PRIMARY KEY,
	item_name text,				-- from itemName
	price numeric,
	quantity int,
	big numeric,				-- 2^64 + id
	view_count bigint,			-- 2^53 + id
	created_at timestamptz,		-- from createdAt
	login text,					-- from user.login, by columns
	first_tag text,				-- from tags.0, by columns
	tags jsonb,
	tags_text text,				-- an array into a text column
	active boolean,
	note text DEFAULT 'no note',
	raw jsonb,					-- the whole record
	untouched text DEFAULT 'kept');

SELECT nango.add_sync('items', api('/v1/items'), 'items',
	columns => '{"login": "user.login", "first_tag": "tags.0",
				 "tags_text": "tags", "raw": "$"}') > 0 AS added;
SELECT status, records, inserted, rejected, error FROM wait_for_sync('items');

SELECT id, item_name, price, quantity, big, view_count, created_at, login,
	   first_tag, tags, tags_text, active, note, untouched
FROM items WHERE id <= 7 ORDER BY id;
-- Numbers are exactly what the API sent, even past 2^53 and 2^64.
SELECT price = 19.99 AS price_exact,
	   big = 18446744073709551617 AS big_exact,
	   view_count = 9007199254740993 AS view_count_exact,
	   raw->'big' = '18446744073709551617'::jsonb AS raw_exact
FROM items WHERE id = 1;

-- A key absent from a record leaves the column as it is; null sets NULL.
UPDATE items SET note = 'set by hand' WHERE id IN (2, 3);
CALL run_sync('items');
SELECT id, note FROM items WHERE id IN (1, 2, 3) ORDER BY id;
SELECT status, records, inserted, updated, unchanged FROM last_run
WHERE name = 'items';
SELECT nango.remove_sync('items');

-- Records repeated within a page: the last one wins.
TRUNCATE items;
SELECT nango.add_sync('dups', api('/fault/duplicates'), 'items') > 0 AS added;
SELECT status, records, inserted, updated, rejected FROM wait_for_sync('dups');
SELECT id, item_name, quantity FROM items ORDER BY id;
SELECT nango.remove_sync('dups');

-- A record whose value does not fit is set aside with its error; the
-- others are written.
TRUNCATE items;
SELECT nango.add_sync('bad_record', api('/fault/badrecord'), 'items') > 0 AS added;
SELECT status, records, inserted, rejected, error FROM wait_for_sync('bad_record');
SELECT id FROM items ORDER BY id;
SELECT r.page, r.record->>'id' AS id, r.record->>'quantity' AS quantity, r.error
FROM nango.rejected_records r
JOIN nango.syncs s ON s.id = r.sync_id WHERE s.name = 'bad_record';
SELECT nango.remove_sync('bad_record');

-- So is a record that breaks a constraint; an object goes to a json
-- column as JSON.
CREATE TABLE checked (id bigint PRIMARY KEY, quantity int CHECK (quantity < 8),
					  "user" json);
SELECT nango.add_sync('checked', api('/v1/items?count=5'), 'checked') > 0 AS added;
SELECT status, records, inserted, rejected, error FROM wait_for_sync('checked');
SELECT id, quantity, "user" FROM checked ORDER BY id;
SELECT r.record->>'id' AS id, r.error
FROM nango.rejected_records r
JOIN nango.syncs s ON s.id = r.sync_id WHERE s.name = 'checked'
ORDER BY 1;
SELECT nango.remove_sync('checked');
DROP TABLE checked;

-- A record without its key is rejected too.
TRUNCATE items;
SELECT nango.add_sync('null_key', api('/fault/nullkey'), 'items') > 0 AS added;
SELECT status, records, inserted, rejected FROM wait_for_sync('null_key');
SELECT id FROM items ORDER BY id;
SELECT r.record->'id' AS id, r.error FROM nango.rejected_records r
JOIN nango.syncs s ON s.id = r.sync_id WHERE s.name = 'null_key';
SELECT nango.remove_sync('null_key');

-- A single object is one record ("$" is the body itself; left out, the
-- object's only array, its tags, would be the records); response_path
-- finds nested records.
TRUNCATE items;
SELECT nango.add_sync('single', api('/v1/single?id=4'), 'items',
					  response_path => '$') > 0 AS added;
SELECT status, records, inserted FROM wait_for_sync('single');
SELECT id, item_name FROM items;
SELECT nango.remove_sync('single');
SELECT nango.add_sync('nested', api('/v1/offset?limit=3'), 'items',
					  response_path => 'results.items') > 0 AS added;
SELECT status, records FROM wait_for_sync('nested');
SELECT nango.remove_sync('nested');

-- A composite key, and a target in another schema with a quoted name.
CREATE SCHEMA "Shop";
CREATE TABLE "Shop"."Order Lines" (id bigint, "itemName" text, price numeric,
								   UNIQUE (id, "itemName"));
SELECT nango.add_sync('lines', api('/v1/items?count=3'), '"Shop"."Order Lines"',
					  unique_key => '{id,itemName}') > 0 AS added;
SELECT status, records, inserted FROM wait_for_sync('lines');
SELECT * FROM "Shop"."Order Lines" ORDER BY id;
SELECT nango.remove_sync('lines');
DROP SCHEMA "Shop" CASCADE;
DROP TABLE items;
