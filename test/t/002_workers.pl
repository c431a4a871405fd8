# The workers: one scheduler per database with the extension, none for the
# others; runs of several syncs at once; SIGTERM ends a request at once;
# DROP EXTENSION and DROP DATABASE work while runs are going on.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use NangoTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $api = start_api();
my $node = new_nango_node('workers');

sub schedulers
{
	return $node->safe_psql('postgres', q{
		SELECT coalesce(string_agg(datname, ',' ORDER BY datname), '')
		FROM pg_stat_activity WHERE backend_type = 'nango scheduler'});
}

# A database without the extension keeps no worker.
$node->safe_psql('postgres', 'CREATE DATABASE plain');
$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->restart;
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'nango launcher'"),
	'the launcher runs');
is(schedulers(), '', 'no scheduler where no database has the extension');

# CREATE EXTENSION starts its database's scheduler at commit.
$node->safe_psql('shop', q{
	CREATE EXTENSION nango;
	CREATE TABLE items (id bigint PRIMARY KEY, item_name text);
	CREATE TABLE slow_items (id bigint PRIMARY KEY, item_name text);
});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity
		  WHERE backend_type = 'nango scheduler' AND datname = 'shop'}),
	'CREATE EXTENSION starts a scheduler for its database');

# A slow API does not hold up the others: while one run waits 20 s for its
# response, another sync is added, runs and finishes.
$node->safe_psql('shop', qq{
	SELECT nango.add_sync('slow', '$api/fault/slow?delay=20', 'slow_items',
						  frequency => '1 day')});
ok($node->poll_query_until('shop',
		q{SELECT count(*) = 1 FROM pg_stat_activity
		  WHERE backend_type = 'nango run' AND query LIKE '%"slow"%'}),
	'the slow run is going on');
$node->safe_psql('shop', qq{
	SELECT nango.add_sync('fast', '$api/v1/items', 'items',
						  frequency => '1 day')});
ok($node->poll_query_until('shop',
		q{SELECT count(*) = 1 FROM nango.sync_runs r JOIN nango.syncs s
		  ON s.id = r.sync_id WHERE s.name = 'fast' AND r.status = 'success'}),
	'another sync ran while the slow one waited');
is($node->safe_psql('shop',
		q{SELECT r.status FROM nango.sync_runs r JOIN nango.syncs s
		  ON s.id = r.sync_id WHERE s.name = 'slow'}),
	'running', 'the slow run is still waiting for its response');

# nango.max_concurrent_runs, reloaded on SIGHUP, bounds the runs at once:
# with 1, a third sync waits while the slow one holds the only place.
$node->safe_psql('postgres', 'ALTER SYSTEM SET nango.max_concurrent_runs = 1');
$node->reload;
$node->safe_psql('shop', qq{
	SELECT nango.trigger_sync('fast');
	SELECT pg_sleep(1);});
is($node->safe_psql('shop',
		q{SELECT r.status FROM nango.sync_runs r JOIN nango.syncs s
		  ON s.id = r.sync_id WHERE s.name = 'fast' ORDER BY r.id DESC LIMIT 1}),
	'queued', 'with one run at a time, a triggered run waits its turn');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET nango.max_concurrent_runs');
$node->reload;
ok($node->poll_query_until('shop',
		q{SELECT r.status = 'success' FROM nango.sync_runs r JOIN nango.syncs s
		  ON s.id = r.sync_id WHERE s.name = 'fast' ORDER BY r.id DESC LIMIT 1}),
	'after the setting is raised again, the waiting run goes ahead');

# A transaction that queued a run and stays open holds up only its own
# sync, even once that sync falls due: another sync's run goes ahead.
$node->safe_psql('shop', qq{
	SELECT nango.add_sync('due_soon', '$api/v1/items?count=2', 'items',
						  frequency => '2 seconds')});
ok($node->poll_query_until('shop',
		q{SELECT count(*) >= 1 FROM nango.sync_runs r JOIN nango.syncs s
		  ON s.id = r.sync_id WHERE s.name = 'due_soon' AND r.status = 'success'}),
	'a sync due every two seconds ran');
my $open = $node->background_psql('shop');
$open->query_safe(q{BEGIN; SELECT nango.trigger_sync('due_soon')});
sleep 3;
$node->safe_psql('shop', qq{
	SELECT nango.add_sync('other', '$api/v1/items?count=5', 'items',
						  frequency => '1 day')});
ok($node->poll_query_until('shop',
		q{SELECT count(*) = 1 FROM nango.sync_runs r JOIN nango.syncs s
		  ON s.id = r.sync_id WHERE s.name = 'other' AND r.status = 'success'}),
	'a sync runs while a due sync is locked by an open transaction');
$open->query_safe('COMMIT');
$open->quit;
$node->safe_psql('shop', q{SELECT nango.pause_sync('due_soon')});
ok($node->poll_query_until('shop',
		q{SELECT count(*) = 0 FROM nango.sync_runs
		  WHERE status = 'queued'}),
	'the run queued by that transaction ran once it committed');

# SIGTERM ends the worker in the middle of its request, not after it.
my $pid = $node->safe_psql('shop',
	q{SELECT pid FROM pg_stat_activity
	  WHERE backend_type = 'nango run' AND query LIKE '%"slow"%'});
my $start = time();
kill 'TERM', $pid;
ok($node->poll_query_until('shop',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'the terminated worker is gone');
cmp_ok(time() - $start, '<', 5,
	'it did not wait for the 20 s response to end');

# DROP EXTENSION while a run is going on: it works, and the workers leave.
ok($node->poll_query_until('shop',
		q{SELECT count(*) = 1 FROM pg_stat_activity
		  WHERE backend_type = 'nango run'}),
	'the slow run was resumed');
$node->safe_psql('shop', 'DROP EXTENSION nango');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_stat_activity
		  WHERE backend_type IN ('nango scheduler', 'nango run')}),
	'DROP EXTENSION ended the workers of its database');

# DROP DATABASE while a run is going on.
$node->safe_psql('shop', qq{
	CREATE EXTENSION nango;
	SELECT nango.add_sync('slow', '$api/fault/slow?delay=20', 'slow_items',
						  frequency => '1 day')});
ok($node->poll_query_until('shop',
		q{SELECT count(*) = 1 FROM pg_stat_activity
		  WHERE backend_type = 'nango run'}),
	'a run is going on again');
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE shop');
is($ret, 0, 'DROP DATABASE works while a run is going on');
is($err, '', 'and says nothing');
is(schedulers(), '', 'no scheduler is left');

# The launcher is still there and serves a new database.
$node->safe_psql('plain', 'CREATE EXTENSION nango');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity
		  WHERE backend_type = 'nango scheduler' AND datname = 'plain'}),
	'a later CREATE EXTENSION gets its scheduler');

# A database copied from one with the extension gets its scheduler.
$node->safe_psql('postgres', 'CREATE DATABASE plain_copy TEMPLATE plain');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity
		  WHERE backend_type = 'nango scheduler' AND datname = 'plain_copy'}),
	'CREATE DATABASE from a template with the extension starts a scheduler');

ok(!$node->log_contains(qr/terminated by signal 11|server process .* was terminated/),
	'no worker crashed');
$node->stop;
done_testing();
