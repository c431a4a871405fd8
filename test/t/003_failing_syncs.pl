# A sync that fails waits its frequency before it runs again, even when it
# fails before its first request; a launcher that is restarted keeps the
# schedulers it finds.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use NangoTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $api = start_api();
my $node = new_nango_node('failing');

$node->safe_psql('postgres', qq{
	CREATE EXTENSION nango;
	CREATE ROLE frank LOGIN;
	GRANT USAGE ON SCHEMA nango TO frank;
	CREATE TABLE items (id bigint PRIMARY KEY, item_name text);
	GRANT SELECT, INSERT, UPDATE ON items TO frank;
	SET ROLE frank;
	SELECT nango.add_sync('franks', '$api/v1/items', 'items',
						  frequency => '2 seconds');
	RESET ROLE;
	SELECT nango.add_sync('broken', '$api/fault/status?code=500', 'items',
						  frequency => '1 hour');
});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 2 FROM nango.sync_runs
		  WHERE status IN ('success', 'error')}),
	'both syncs ran once');

# The owner of a sync goes away: its runs fail before any request, and
# the sync still waits its two seconds between them rather than starting
# run after run.
$node->safe_psql('postgres', q{
	REVOKE ALL ON items FROM frank;
	DROP OWNED BY frank;
	DROP ROLE frank;
});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM nango.sync_runs r JOIN nango.syncs s
		  ON s.id = r.sync_id WHERE s.name = 'franks' AND r.status = 'error'}),
	'the run of the sync whose owner is gone failed');
like($node->safe_psql('postgres',
		q{SELECT r.error FROM nango.sync_runs r JOIN nango.syncs s
		  ON s.id = r.sync_id WHERE s.name = 'franks' AND r.status = 'error'}),
	qr/owner of sync "franks" no longer exists/, 'the error says why');
sleep 5;
cmp_ok($node->safe_psql('postgres',
		q{SELECT count(*) FROM nango.sync_runs r JOIN nango.syncs s
		  ON s.id = r.sync_id WHERE s.name = 'franks' AND r.status = 'error'}),
	'<=', 4, 'in five more seconds it failed at most three more times');
is($node->safe_psql('postgres',
		q{SELECT s.next_run_at - max(r.finished_at) FROM nango.syncs s
		  JOIN nango.sync_runs r ON r.sync_id = s.id
		  WHERE s.name = 'franks' AND r.status = 'error'
		  GROUP BY s.next_run_at}),
	'00:00:02', 'each failed run set the next one two seconds after it');
$node->safe_psql('postgres', q{SELECT nango.pause_sync('franks')});

# An HTTP error fails the run, and the sync waits too.
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM nango.sync_runs r JOIN nango.syncs s
		  ON s.id = r.sync_id WHERE s.name = 'broken'}),
	'1', 'a sync whose API fails ran once');

# A terminated launcher comes back and starts no second scheduler.
my $launcher = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'nango launcher'");
my $scheduler = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'nango scheduler'");
kill 'TERM', $launcher;
ok($node->poll_query_until('postgres',
		qq{SELECT count(*) = 1 FROM pg_stat_activity
		   WHERE backend_type = 'nango launcher' AND pid <> $launcher}),
	'the launcher came back');
sleep 2;
is($node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ',') FROM pg_stat_activity
		 WHERE backend_type = 'nango scheduler'"),
	$scheduler, 'the scheduler it found is the only one');
ok(!$node->log_contains(qr/scheduler for this database is already running/),
	'the new launcher did not try to start another');

$node->stop;
done_testing();
