# Two sessions calling nango's functions on the same sync at once: the one
# that waits sees what the other committed, and says so in nango's own
# words (not a constraint's), or does nothing where nothing is left to do.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use NangoTest;
use IPC::Run ();
use PostgreSQL::Test::Utils;
use Test::More;

my $api = start_api();
my $node = new_nango_node('concurrent');
$node->safe_psql('postgres', qq{
	CREATE EXTENSION nango;
	CREATE TABLE items (id bigint PRIMARY KEY, item_name text);
	SELECT nango.add_sync('taken', '$api/v1/items', 'items',
						  frequency => '1 day');
	SELECT nango.add_sync('doomed', '$api/v1/items', 'items',
						  frequency => '1 day');
});

# Runs $first in an open transaction, starts $second in another session,
# waits until $second waits on a lock, commits $first, and returns what
# $second printed on stdout and stderr.
sub race
{
	my ($first, $second) = @_;
	my $open = $node->background_psql('postgres');
	$open->query_safe("BEGIN; $first");
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres'),
		  '-c', $second ],
		'>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		WHERE wait_event_type = 'Lock' AND query LIKE '%nango.%'})
	  or diag('the second session did not wait on a lock');
	$open->query_safe('COMMIT');
	$open->quit;
	$h->finish;
	chomp $out;
	return ($out, $err);
}

my ($out, $err) = race(
	qq{SELECT nango.add_sync('twin', '$api/v1/items', 'items')},
	qq{SELECT nango.add_sync('twin', '$api/v1/items', 'items')});
like($err, qr/ERROR:  sync "twin" already exists/,
	'a name added meanwhile by another session: nango says it exists');
unlike($err, qr/duplicate key/, 'not as a unique violation');

($out, $err) = race(q{SELECT nango.remove_sync('doomed')},
	q{SELECT nango.trigger_sync('doomed')});
like($err, qr/ERROR:  sync "doomed" does not exist/,
	'a sync removed meanwhile cannot be triggered: it does not exist');
unlike($err, qr/foreign key/, 'not as a foreign key violation');

$node->safe_psql('postgres', qq{
	SELECT nango.add_sync('doomed', '$api/v1/items', 'items',
						  frequency => '1 day')});
($out, $err) = race(q{SELECT nango.remove_sync('doomed')},
	q{SELECT nango.remove_sync('doomed')});
is($out, 'f', 'of two sessions removing one sync, the second removes nothing');

$node->safe_psql('postgres', qq{
	SELECT nango.add_sync('doomed', '$api/v1/items', 'items',
						  frequency => '1 day')});
($out, $err) = race(q{SELECT nango.remove_sync('doomed')},
	q{SELECT nango.pause_sync('doomed')});
like($err, qr/ERROR:  sync "doomed" does not exist/,
	'a sync removed meanwhile cannot be paused');

($out, $err) = race(q{SELECT nango.pause_sync('taken')},
	q{SELECT nango.trigger_sync('taken')});
like($err, qr/ERROR:  sync "taken" is paused/,
	'a sync paused meanwhile cannot be triggered');

is($node->safe_psql('postgres',
		'SELECT string_agg(name, \',\' ORDER BY name) FROM nango.syncs'),
	'taken,twin', 'the syncs are the ones the winners left');

# A transaction that triggered a sync and stays open while that sync's run
# starts: the run waits for it, and triggering again in it is no deadlock.
$node->safe_psql('postgres', q{ALTER SYSTEM SET nango.max_concurrent_runs = 1});
$node->reload;
$node->safe_psql('postgres', qq{
	SELECT nango.resume_sync('taken');
	SELECT nango.add_sync('busy', '$api/fault/slow?delay=3', 'items',
						  frequency => '1 day');
	SELECT nango.trigger_sync('taken');});
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
	BEGIN;
	SELECT nango.trigger_sync('taken');
	SELECT pg_sleep(5);
	SELECT nango.trigger_sync('taken');
	COMMIT;});
is($ret, 0, 'triggering again while the run waits to start is no deadlock');
unlike($stderr, qr/ERROR/, 'and raises no error');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET nango.max_concurrent_runs});
$node->reload;

# trigger_sync from four sessions for five seconds, at a sync due every
# second: no call and no run fails on a deadlock.
$node->safe_psql('postgres', qq{
	SELECT nango.add_sync('hot', '$api/v1/items?count=3', 'items',
						  frequency => '1 second');});
$node->pgbench('--no-vacuum --client=4 --time=5', 0, [qr/processed: [1-9]/],
	[qr/^(?!.*(?:ERROR|aborted))/s], 'trigger_sync from four sessions at once',
	{ 'trigger' => q{SELECT nango.trigger_sync('hot');} });
ok($node->poll_query_until('postgres', q{
		SELECT count(*) = 0 FROM nango.sync_runs
		WHERE status IN ('queued', 'running')}),
	'every run ended');
is($node->safe_psql('postgres', q{
		SELECT count(*) FROM nango.sync_runs WHERE error LIKE '%deadlock%'}),
	'0', 'no run failed on a deadlock');
ok(!$node->log_contains(qr/deadlock detected/), 'the log has no deadlock');
$node->stop;
done_testing();
