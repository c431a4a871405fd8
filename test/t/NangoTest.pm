# Shared setup of nango's TAP tests: a cluster that preloads nango, and the
# test API server on 127.0.0.1.
package NangoTest;

use strict;
use warnings;

use Exporter 'import';
use File::Temp ();
use IPC::Run ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT = qw(start_api api_get new_nango_node wait_for_run_status);

my $python = $ENV{NANGO_PYTHON} || 'python3';
my $server = $ENV{NANGO_API_SERVER}
  or BAIL_OUT('NANGO_API_SERVER must name test/api_server.py');

# Starts the API server on a free port; returns its base URL.  It is
# killed when the test ends.
my @servers;
sub start_api
{
	my $dir = File::Temp::tempdir(CLEANUP => 1);
	my $port_file = "$dir/port";
	my $h = IPC::Run::start([ $python, $server, '--port', '0',
		'--port-file', $port_file, '--log', "$dir/log" ]);
	push @servers, $h;
	for (1 .. 150)
	{
		last if -s $port_file;
		usleep(100_000);
	}
	BAIL_OUT('the test API server did not start') unless -s $port_file;
	my $port = slurp_file($port_file);
	chomp $port;
	return "http://127.0.0.1:$port";
}

END
{
	$_->kill_kill for @servers;
}

# GET (or POST) a path of the API server; returns the body.
sub api_get
{
	my ($url, $path, $method) = @_;
	my ($out, $err);
	IPC::Run::run([ $python, $server, $method // 'get', $path,
		'--url', $url ], '>', \$out, '2>', \$err)
	  or die "api_server.py $path failed: $err";
	return $out;
}

# A started node that preloads nango.
sub new_nango_node
{
	my ($name, $extra) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'nango'\n"
		  . "max_worker_processes = 16\n"
		  . "restart_after_crash = on\n"
		  . ($extra // ''));
	$node->start;
	return $node;
}

# Waits (bounded) until the run has the given status.
sub wait_for_run_status
{
	my ($node, $db, $run_id, $status) = @_;
	return $node->poll_query_until($db,
		"SELECT status = '$status' FROM nango.sync_runs WHERE id = $run_id");
}

1;
