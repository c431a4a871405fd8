# What the server log and pg_stat_activity show of the workers: a LOG line
# when a run starts and ends, with its counts, and no secret even at
# DEBUG1; an idle scheduler sleeping on its latch without a pass; a run
# waiting on its API shown as such, ended by nango.http_timeout; a
# triggered run started at once; wait_for_run giving up in time.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use NangoTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $api = start_api();
# No statement text in the log: what is there comes from the workers.
my $node = new_nango_node('logs',
	"log_min_messages = debug1\nlog_statement = none\n");

my $secret_header = 'Bearer test-token';
my $secret_param = 'param-secret-4f1c';
$node->safe_psql('postgres', qq{
	CREATE EXTENSION nango;
	CREATE TABLE items (id bigint PRIMARY KEY, item_name text);
	SELECT nango.add_sync('paged', '$api/v1/auth/items', 'items',
		headers => '{"Authorization": "$secret_header"}',
		query_params => '{"api_key": "$secret_param"}',
		frequency => '1 day');
});
ok($node->poll_query_until('postgres',
		q{SELECT status = 'success' FROM nango.sync_runs ORDER BY id LIMIT 1}),
	'the first run succeeded');

# The LOG lines of the run: start, then the end with its counts.
ok($node->log_contains(qr/LOG:  nango run 1 of sync "paged" started/),
	'a LOG line says the run started');
ok($node->log_contains(qr/LOG:  nango run 1 of sync "paged" succeeded: 1 pages, 25 records \(25 inserted, 0 updated, 0 unchanged, 0 rejected\), 1 HTTP requests in [0-9.]+ s/),
	'a LOG line says it succeeded, with its counts');

# A failing run says so, with its error.
$node->safe_psql('postgres', qq{
	SELECT nango.add_sync('broken', '$api/v1/auth/items?api_key=$secret_param',
		'items', headers => '{"Authorization": "Bearer wrong"}',
		frequency => '1 day')});
ok($node->poll_query_until('postgres',
		q{SELECT r.status = 'error' FROM nango.sync_runs r
		  JOIN nango.syncs s ON s.id = r.sync_id WHERE s.name = 'broken'}),
	'the run with a wrong token failed');
ok($node->log_contains(qr/LOG:  nango run 2 of sync "broken" failed: 0 pages, 0 records .*: .*status 401/),
	'a LOG line says it failed, with its counts and the status');

# Neither the header nor the query parameter reaches the log, even at
# DEBUG1, where each request is logged.
ok($node->log_contains(qr/DEBUG:  nango: GET \Q$api\E\/v1\/auth\/items: status 200/),
	'DEBUG1 logs each request, its URL without the query');
my $log = slurp_file($node->logfile);
unlike($log, qr/test-token|wrong|\Q$secret_param\E/,
	'no header value or query parameter is in the log');

# An idle scheduler sleeps on its latch: no pass runs while nothing is due
# (each pass sets its pg_stat_activity state), and nothing polls.
sub scheduler_state
{
	return $node->safe_psql('postgres', q{
		SELECT state_change, wait_event_type, wait_event
		FROM pg_stat_activity WHERE backend_type = 'nango scheduler'});
}
my $before = scheduler_state();
like($before, qr/\|Extension\|Extension$/,
	'the idle scheduler waits on its latch');
sleep 3;
is(scheduler_state(), $before, 'and made no pass in three seconds');

# A triggered run starts as soon as its transaction commits, not at the
# next pass of a poller.
my $run = $node->safe_psql('postgres', q{SELECT nango.trigger_sync('paged')});
ok(wait_for_run_status($node, 'postgres', $run, 'success'),
	'the triggered run succeeded');
is($node->safe_psql('postgres', qq{
		SELECT started_at - queued_at < interval '2 seconds'
		FROM nango.sync_runs WHERE id = $run}),
	't', 'it started right after its commit');

# A run waiting on its API: pg_stat_activity shows it waiting, and
# nango.http_timeout (reloaded on SIGHUP) ends the request.
$node->safe_psql('postgres', q{ALTER SYSTEM SET nango.http_timeout = '2s'});
$node->reload;
$node->safe_psql('postgres', qq{
	SELECT nango.add_sync('slow', '$api/fault/slow?delay=20', 'items',
		frequency => '1 day')});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity
		  WHERE backend_type = 'nango run' AND query LIKE '%"slow"%'
		  AND wait_event = 'Extension'}),
	'pg_stat_activity shows the run waiting for its response');

# wait_for_run gives up after its timeout, saying so.
my $slow = $node->safe_psql('postgres', q{
	SELECT r.id FROM nango.sync_runs r JOIN nango.syncs s
	ON s.id = r.sync_id WHERE s.name = 'slow'});
my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT nango.wait_for_run($slow, '100 milliseconds')");
like($err, qr/ERROR:  run $slow did not finish in time/,
	'wait_for_run gives up when its timeout passes');

ok(wait_for_run_status($node, 'postgres', $slow, 'error'),
	'the slow run failed');
like($node->safe_psql('postgres', "SELECT error FROM nango.sync_runs WHERE id = $slow"),
	qr/timed out \(nango\.http_timeout is 2 s\)/,
	'its error names nango.http_timeout');
is($node->safe_psql('postgres', qq{
		SELECT finished_at - started_at < interval '15 seconds'
		FROM nango.sync_runs WHERE id = $slow}),
	't', 'it did not wait for the 20 s response');

ok(!$node->log_contains(qr/terminated by signal|server process .* was terminated/),
	'no worker crashed');
$node->stop;
done_testing();
