-- Records that spell a key two ways, values equal to the old ones by the
-- type's equality but not digit for digit, types from another schema, and
-- tables that change under a sync.
\! python3 test/api_server.py post /control/reset > /dev/null

-- Item 1 has both created_at and createdAt; the others only createdAt:
-- each record feeds created_at from its own spelling.
\! python3 test/api_server.py post '/control/set?dataset=items&id=1&field=created_at&value=exact%20key' > /dev/null
CREATE TABLE spelled (id bigint PRIMARY KEY, created_at text);
SELECT nango.add_sync('spelled', api('/v1/items?count=3'), 'spelled') > 0 AS added;
SELECT status, records, inserted FROM wait_for_sync('spelled');
SELECT * FROM spelled ORDER BY id;
SELECT nango.remove_sync('spelled');

-- 19.99 becoming 19.990 is equal as numeric, but not what the API sends:
-- the row is updated.
CREATE TABLE prices (id bigint PRIMARY KEY, price numeric);
SELECT nango.add_sync('prices', api('/v1/items?count=3'), 'prices') > 0 AS added;
SELECT status, inserted FROM wait_for_sync('prices');
\! python3 test/api_server.py post '/control/set?dataset=items&id=1&field=price&value=19.990' > /dev/null
CALL run_sync('prices');
SELECT status, updated, unchanged FROM last_run WHERE name = 'prices';
SELECT id, price FROM prices ORDER BY id;

-- A column named in columns, or in unique_key, that is renamed away fails
-- the next run, saying so.
CREATE TABLE renamed (id bigint PRIMARY KEY, author text);
SELECT nango.add_sync('renamed', api('/v1/items?count=3'), 'renamed',
					  columns => '{"author": "user.login"}') > 0 AS added;
SELECT status, inserted FROM wait_for_sync('renamed');
ALTER TABLE renamed RENAME COLUMN author TO writer;
CALL run_sync('renamed');
SELECT status, error FROM last_run WHERE name = 'renamed';
ALTER TABLE renamed RENAME COLUMN writer TO author;
ALTER TABLE renamed RENAME COLUMN id TO ident;
CALL run_sync('renamed');
SELECT status, error FROM last_run WHERE name = 'renamed';
SELECT nango.remove_sync('renamed');

-- A key of a type whose equality lives in another schema (citext).
CREATE SCHEMA ext;
CREATE EXTENSION citext SCHEMA ext;
CREATE TABLE logins (login ext.citext PRIMARY KEY, id bigint);
SELECT nango.add_sync('logins', api('/v1/items?count=4'), 'logins',
					  unique_key => '{login}',
					  columns => '{"login": "user.login"}') > 0 AS added;
SELECT status, records, inserted, rejected FROM wait_for_sync('logins');
SELECT * FROM logins ORDER BY login;
CALL run_sync('logins');
SELECT status, records, inserted, updated, unchanged FROM last_run
WHERE name = 'logins';
SELECT nango.remove_sync('logins'), nango.remove_sync('prices');

DROP TABLE spelled, prices, renamed, logins;
DROP SCHEMA ext CASCADE;
\! python3 test/api_server.py post /control/reset > /dev/null
