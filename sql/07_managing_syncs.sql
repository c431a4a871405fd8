-- Pausing, resuming, triggering, waiting for and removing syncs, and who
-- may see and change them.
CREATE TABLE items (id bigint PRIMARY KEY, item_name text);
SELECT nango.add_sync('managed', api('/v1/items'), 'items',
					  frequency => '1 day') > 0 AS added;
SELECT status FROM wait_for_sync('managed');

-- A run can be queued and waited for once its transaction has committed.
-- Waiting in the transaction that queued the run would wait forever: it
-- is refused.
SELECT expect_error($$SELECT nango.wait_for_run(nango.trigger_sync('managed'))$$);
SELECT expect_error($$SELECT nango.wait_for_run(nango.trigger_sync('managed'), '1 second')$$);

-- A paused sync runs no more until resumed, and says so.
SELECT nango.pause_sync('managed');
SELECT name, state, next_run_at FROM nango.sync_status WHERE name = 'managed';
SELECT nango.trigger_sync('managed');
SELECT nango.resume_sync('managed');
SELECT name, state, next_run_at > now() AS later FROM nango.sync_status
WHERE name = 'managed';
CALL run_sync('managed');
SELECT status, records, unchanged FROM last_run WHERE name = 'managed';

-- A run queued before the pause waits for resume_sync, then runs.
BEGIN;
SELECT nango.trigger_sync('managed') AS held_run \gset
SELECT nango.pause_sync('managed');
COMMIT;
SELECT pg_sleep(1.5);
SELECT r.status, s.state FROM nango.sync_runs r, nango.sync_status s
WHERE r.id = :held_run AND s.name = 'managed';
SELECT nango.resume_sync('managed');
SELECT status, records FROM nango.wait_for_run(:held_run);

-- A second trigger while a run is queued gives that run's id.
BEGIN;
SELECT nango.trigger_sync('managed') = nango.trigger_sync('managed') AS same_run;
ROLLBACK;

-- Another role sees none of these syncs and cannot change them.
CREATE ROLE nango_tester LOGIN;
GRANT USAGE ON SCHEMA nango TO nango_tester;
CREATE SCHEMA tester AUTHORIZATION nango_tester;
SET ROLE nango_tester;
SELECT count(*) FROM nango.syncs;
SELECT count(*) FROM nango.sync_runs;
SELECT count(*) FROM nango.sync_status;
SELECT nango.pause_sync('managed');
SELECT nango.remove_sync('managed');
DELETE FROM nango.syncs;
INSERT INTO nango.sync_runs (sync_id) VALUES (1);
-- Nor may it sync into a table it cannot write.
SELECT nango.add_sync('sneaky', api('/v1/items'), 'public.items');
-- Names are unique in the database: the error says so without showing
-- the other role's sync.
CREATE TABLE tester.taken (id bigint PRIMARY KEY);
SELECT nango.add_sync('managed', api('/v1/items'), 'tester.taken');
-- Its own table works, and it sees its own sync.
CREATE TABLE tester.items (id bigint PRIMARY KEY, item_name text);
SELECT nango.add_sync('own', api('/v1/items?count=4'), 'tester.items') > 0 AS added;
SELECT status, records FROM wait_for_sync('own');
SELECT name, owner FROM nango.syncs;
SELECT count(*) FROM tester.items;
SELECT nango.remove_sync('own');
RESET ROLE;
DROP OWNED BY nango_tester;
DROP SCHEMA IF EXISTS tester;
DROP ROLE nango_tester;

-- Removing a sync removes its runs.
SELECT nango.remove_sync('managed');
SELECT count(*) FROM nango.sync_runs r
WHERE NOT EXISTS (SELECT 1 FROM nango.syncs s WHERE s.id = r.sync_id);
DROP TABLE items;
