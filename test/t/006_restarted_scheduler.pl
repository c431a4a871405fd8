# A scheduler started again while a run it started goes on counts that
# run against nango.max_concurrent_runs, and starts the next run once that
# one has ended.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use NangoTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $api = start_api();
my $node = new_nango_node('restarted', "nango.max_concurrent_runs = 1\n");
$node->safe_psql('postgres', qq{
	CREATE EXTENSION nango;
	CREATE TABLE items (id bigint PRIMARY KEY, item_name text);
	SELECT nango.add_sync('slow', '$api/fault/slow?delay=6', 'items',
						  frequency => '1 day');
});
ok($node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		WHERE backend_type = 'nango run'}),
	'the slow run is going on');

my $old = $node->safe_psql('postgres', q{
	SELECT pid FROM pg_stat_activity WHERE backend_type = 'nango scheduler'});
$node->safe_psql('postgres', "SELECT pg_terminate_backend($old)");
ok($node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		WHERE backend_type = 'nango scheduler' AND pid <> $old}),
	'the launcher started the scheduler again');

$node->safe_psql('postgres', qq{
	SELECT nango.add_sync('fast', '$api/v1/items', 'items',
						  frequency => '1 day')});
sleep 2;
is($node->safe_psql('postgres', q{
		SELECT r.status FROM nango.sync_runs r JOIN nango.syncs s
		ON s.id = r.sync_id WHERE s.name = 'fast'}),
	'queued', 'the new scheduler counts the run it did not start');
is($node->safe_psql('postgres', q{
		SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'nango run'}),
	'1', 'one run at a time');

ok($node->poll_query_until('postgres', q{
		SELECT r.status = 'success' FROM nango.sync_runs r
		JOIN nango.syncs s ON s.id = r.sync_id WHERE s.name = 'fast'}),
	'the queued run ran once the slow one ended');
is($node->safe_psql('postgres', q{
		SELECT r.status FROM nango.sync_runs r JOIN nango.syncs s
		ON s.id = r.sync_id WHERE s.name = 'slow'}),
	'success', 'the slow run went on to its end');
$node->stop;
done_testing();
