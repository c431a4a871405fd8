# A run interrupted by a crash, a terminated worker or a server restart
# resumes from its last committed page: the table ends equal to the
# source, no record lost or written twice.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use NangoTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $api = start_api();
my $node = new_nango_node('interrupted');

$node->safe_psql('postgres', q{
	CREATE EXTENSION nango;
	CREATE TABLE slow_items (id bigint PRIMARY KEY, item_name text,
							 price numeric, view_count bigint);
});

# 60 records, 5 a page, each page taking 0.4 s: 13 requests (the last page
# is empty), time enough to interrupt the run in the middle.
$node->safe_psql('postgres', qq{
	SELECT nango.add_sync('slow',
		'$api/v1/slow_pages?per_page=5&delay=0.4', 'slow_items',
		frequency => '1 day',
		paging => '{"type": "page", "size_param": "per_page", "size": 5}');
});

# The table matches the API's records exactly: none missing, none extra,
# none different.
sub check_table_equals_source
{
	my ($what) = @_;
	my $dump = api_get($api, '/control/dump?dataset=slow');
	$dump =~ s/'/''/g;
	my $diff = $node->safe_psql('postgres', qq{
		SELECT count(*) FROM jsonb_array_elements('$dump'::jsonb) e
		FULL JOIN slow_items t ON t.id = (e->>'id')::bigint
		WHERE e IS NULL OR t.id IS NULL
		   OR t.item_name IS DISTINCT FROM e->>'itemName'
		   OR t.price IS DISTINCT FROM (e->>'price')::numeric
		   OR t.view_count IS DISTINCT FROM (e->>'viewCount')::bigint});
	is($diff, '0', "$what: the table equals the source");
}

# Waits until the running run has committed at least $pages pages.
sub wait_for_pages
{
	my ($run_id, $pages) = @_;
	ok($node->poll_query_until('postgres',
			"SELECT pages >= $pages FROM nango.sync_runs WHERE id = $run_id"),
		"run $run_id reached page $pages");
}

sub run_worker_pid
{
	my $pid;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'nango run'")
	  or return undef;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'nango run'");
}

# --- a crash: the run worker is killed with SIGKILL -----------------------

ok($node->poll_query_until('postgres',
		'SELECT count(*) = 1 FROM nango.sync_runs'),
	'the scheduler queued the first run');
my $run = $node->safe_psql('postgres', 'SELECT id FROM nango.sync_runs');
wait_for_pages($run, 3);
my $activity = $node->safe_psql('postgres',
	"SELECT query FROM pg_stat_activity WHERE backend_type = 'nango run'");
like($activity, qr/^nango sync "slow": run \d+, page \d+$/,
	'pg_stat_activity names the sync, the run and the page');
my $pid = run_worker_pid();
ok($pid, 'the run worker is visible');
kill 'KILL', $pid;

ok(wait_for_run_status($node, 'postgres', $run, 'success'),
	'the run finished after the crash');
my $counts = $node->safe_psql('postgres',
	"SELECT pages, records, inserted, updated, unchanged, rejected, resumes
	 FROM nango.sync_runs WHERE id = $run");
is($counts, '13|60|60|0|0|0|1',
	'13 pages and 60 records, each inserted once, after one resume');
check_table_equals_source('after a crash');
ok($node->log_contains(qr/nango run $run of sync "slow" resumed after page \d+/),
	'the log says the run resumed');

# --- a terminated worker (SIGTERM) -----------------------------------------

api_get($api, '/control/set?dataset=slow&id=42&field=itemName&value=Changed', 'post');
$run = $node->safe_psql('postgres',
	"SELECT nango.trigger_sync('slow', full_refresh => true)");
wait_for_pages($run, 2);
$pid = run_worker_pid();
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok(wait_for_run_status($node, 'postgres', $run, 'success'),
	'the run finished after its worker was terminated');
$counts = $node->safe_psql('postgres',
	"SELECT records, inserted, updated, unchanged, resumes
	 FROM nango.sync_runs WHERE id = $run");
is($counts, '60|0|1|59|1', 'one record updated, the others unchanged');
check_table_equals_source('after SIGTERM');

# --- a server restart in the middle of a run -------------------------------

api_get($api, '/control/set?dataset=slow&id=7&field=price&value=1234.50', 'post');
$run = $node->safe_psql('postgres', "SELECT nango.trigger_sync('slow')");
wait_for_pages($run, 2);
$node->restart;
ok(wait_for_run_status($node, 'postgres', $run, 'success'),
	'the run finished after a restart');
$counts = $node->safe_psql('postgres',
	"SELECT records, updated, resumes FROM nango.sync_runs WHERE id = $run");
is($counts, '60|1|1', 'the run resumed once and updated the changed record');
check_table_equals_source('after a restart');
is($node->safe_psql('postgres', "SELECT price FROM slow_items WHERE id = 7"),
	'1234.50', 'the changed price landed as sent');

# --- a failing page leaves the table as the committed pages left it --------

$node->safe_psql('postgres', q{
	CREATE TABLE flaky_items (id bigint PRIMARY KEY, item_name text)});
$node->safe_psql('postgres', qq{
	SELECT nango.add_sync('flaky', '$api/v1/page?per_page=10&fail_page=2',
		'flaky_items', frequency => '1 day',
		paging => '{"type": "page", "size_param": "per_page", "size": 10}')});
$node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM nango.sync_runs r JOIN nango.syncs s
	ON s.id = r.sync_id WHERE s.name = 'flaky' AND r.status = 'error'});
is($node->safe_psql('postgres', 'SELECT count(*) FROM flaky_items'), '10',
	'the page before the failing one is there, nothing of the failing one');

$node->stop;
done_testing();
