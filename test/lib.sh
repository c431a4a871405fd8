# shellcheck shell=bash
# Helpers shared by test/demo and test/run; source this file, do not run it.
#
#   nango_install_deps          apt-get what is missing (needs root)
#   nango_build                 make clean, make, make install
#   nango_tmpdir                a scratch dir every user can traverse, and a
#                               trap that calls nango_stop_all on exit
#   nango_start_api DIR         the test API server (test/api_server.py) on a
#                               free port of 127.0.0.1; exports NANGO_API_URL
#   nango_start_cluster DIR PORT  a throwaway cluster that preloads nango,
#                               listening only on a socket in DIR; exports
#                               PGHOST, PGPORT, PGUSER, PGDATABASE
#   nango_stop_all              stops both (the trap calls it)
#   nango_as_pg CMD...          runs CMD as the postgres user when we are root
#
# Every wait is bounded.  Works as root on a fresh Debian 12, and as an
# ordinary user who already has the packages.

NANGO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NANGO_PACKAGES=(postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev
	libjansson-dev libipc-run-perl perl python3 make gcc libc6-dev pkg-config)
NANGO_TMP=
NANGO_API_PID=
NANGO_PGDATA=

nango_log() {
	printf '==> %s\n' "$*"
}

nango_die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# The pg_config of PostgreSQL 15: $PG_CONFIG if set, else version 15's own,
# else the one on PATH.
nango_pg_config() {
	if [[ -n ${PG_CONFIG:-} ]]; then
		echo "$PG_CONFIG"
	elif [[ -x /usr/lib/postgresql/15/bin/pg_config ]]; then
		echo /usr/lib/postgresql/15/bin/pg_config
	else
		command -v pg_config || nango_die "pg_config not found"
	fi
}

# The Python the tests use: Debian's if present (the README's machine).
nango_python() {
	if [[ -x /usr/bin/python3 ]]; then
		echo /usr/bin/python3
	else
		command -v python3 || nango_die "python3 not found"
	fi
}

nango_as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# Installs the Debian packages nango needs that are missing.  apt's output
# is shown only when it fails.
nango_install_deps() {
	local pkg missing=() out
	for pkg in "${NANGO_PACKAGES[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null |
			grep -q 'install ok installed'; then
			missing+=("$pkg")
		fi
	done
	if [[ ${#missing[@]} -eq 0 ]]; then
		nango_log "packages: all present"
		return 0
	fi
	if [[ $(id -u) -ne 0 ]]; then
		nango_die "missing packages: ${missing[*]} (run as root, or install them)"
	fi
	nango_log "installing ${missing[*]}"
	out=$(mktemp)
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get -q update >"$out" 2>&1; then
		cat "$out" >&2
		rm -f "$out"
		nango_die "apt-get update failed"
	fi
	if ! apt-get -q install -y --no-install-recommends "${missing[@]}" \
		>"$out" 2>&1; then
		cat "$out" >&2
		rm -f "$out"
		nango_die "apt-get install failed"
	fi
	grep -E '^(E|W):' "$out" >&2 || true
	rm -f "$out"
}

# Builds and installs the extension (make install needs root, or a
# PostgreSQL the user owns).
nango_build() {
	local pgc jobs
	pgc=$(nango_pg_config)
	jobs=$(nproc 2>/dev/null || echo 2)
	nango_log "building nango"
	# with_llvm=no: no JIT bitcode, so no clang is needed.
	make -C "$NANGO_ROOT" -s PG_CONFIG="$pgc" with_llvm=no clean >/dev/null
	make -C "$NANGO_ROOT" -s -j"$jobs" PG_CONFIG="$pgc" with_llvm=no
	nango_log "installing nango into $("$pgc" --pkglibdir)"
	make -C "$NANGO_ROOT" -s PG_CONFIG="$pgc" with_llvm=no install >/dev/null
}

# Creates NANGO_TMP (traversable by the postgres user) and installs the trap
# that cleans up on any exit.
nango_tmpdir() {
	# mktemp's template: "nango-test." and six random characters.
	NANGO_TMP=$(mktemp -d "${TMPDIR:-/tmp}/nango-test.$(printf 'X%.0s' 1 2 3 4 5 6)")
	chmod 755 "$NANGO_TMP"
	trap nango_stop_all EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# Starts test/api_server.py on a free port of 127.0.0.1, its port file and
# log in DIR, and waits (at most 15 s) until it listens.
nango_start_api() {
	local dir=$1 py i port
	py=$(nango_python)
	mkdir -p "$dir"
	rm -f "$dir/api.port"
	"$py" "$NANGO_ROOT/test/api_server.py" --port 0 \
		--port-file "$dir/api.port" --log "$dir/api.log" &
	NANGO_API_PID=$!
	for ((i = 0; i < 150; i++)); do
		[[ -s $dir/api.port ]] && break
		if ! kill -0 "$NANGO_API_PID" 2>/dev/null; then
			cat "$dir/api.log" >&2 || true
			NANGO_API_PID=
			nango_die "the test API server exited at start"
		fi
		sleep 0.1
	done
	[[ -s $dir/api.port ]] || nango_die "the test API server did not start in 15 s"
	port=$(cat "$dir/api.port")
	export NANGO_API_PORT=$port
	export NANGO_API_URL="http://127.0.0.1:$port"
	export NANGO_API_SERVER="$NANGO_ROOT/test/api_server.py"
	export NANGO_PYTHON=$py
	nango_log "test API listening on $NANGO_API_URL (log: $dir/api.log)"
}

# Creates and starts a cluster in DIR/data (DIR is made and given to the
# postgres user), socket and log in DIR, port PORT.  Start the API server
# first: its URL goes into nango_test.api_url.
nango_start_cluster() {
	local dir=$1 port=$2 bindir
	bindir=$("$(nango_pg_config)" --bindir)
	mkdir -p "$dir"
	if [[ $(id -u) -eq 0 ]]; then
		chown postgres: "$dir"
	fi
	chmod 755 "$dir"
	nango_log "initdb in $dir/data"
	if ! (cd "$dir" && nango_as_pg "$bindir/initdb" -D "$dir/data" \
		-U postgres -A trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1); then
		cat "$dir/initdb.log" >&2
		nango_die "initdb failed"
	fi
	NANGO_PGDATA=$dir/data
	nango_as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF

# Added by test/lib.sh: a throwaway cluster for nango's tests.
shared_preload_libraries = '${NANGO_PRELOAD-nango}'
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
fsync = off
synchronous_commit = off
full_page_writes = off
max_worker_processes = 32
log_line_prefix = '%m [%p] %q%b %a '
nango_test.api_url = '${NANGO_API_URL:-}'
nango_test.api_server = '${NANGO_API_SERVER:-}'
EOF
	nango_log "starting PostgreSQL (log: $dir/log)"
	if ! (cd "$dir" && nango_as_pg "$bindir/pg_ctl" -D "$dir/data" \
		-l "$dir/log" -w -t 60 start >/dev/null); then
		tail -n 30 "$dir/log" >&2 || true
		nango_die "the cluster did not start"
	fi
	export PGHOST=$dir PGPORT=$port PGUSER=postgres PGDATABASE=postgres
	export PATH="$bindir:$PATH"
}

# Stops the cluster and the API server (bounded) and removes NANGO_TMP
# unless NANGO_KEEP=1.  Safe to call twice; does not exit.
nango_cleanup() {
	local bindir i
	if [[ -n $NANGO_PGDATA && -f $NANGO_PGDATA/postmaster.pid ]]; then
		bindir=$("$(nango_pg_config)" --bindir)
		(cd / && nango_as_pg "$bindir/pg_ctl" -D "$NANGO_PGDATA" -m fast \
			-w -t 30 stop >/dev/null 2>&1) ||
			(cd / && nango_as_pg "$bindir/pg_ctl" -D "$NANGO_PGDATA" \
				-m immediate -w -t 30 stop >/dev/null 2>&1) || true
	fi
	NANGO_PGDATA=
	if [[ -n $NANGO_API_PID ]]; then
		kill -TERM "$NANGO_API_PID" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$NANGO_API_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$NANGO_API_PID" 2>/dev/null || true
		wait "$NANGO_API_PID" 2>/dev/null || true
	fi
	NANGO_API_PID=
	if [[ -n $NANGO_TMP && -d $NANGO_TMP ]]; then
		if [[ ${NANGO_KEEP:-0} == 1 ]]; then
			echo "kept $NANGO_TMP (NANGO_KEEP=1)" >&2
		else
			rm -rf "$NANGO_TMP"
		fi
	fi
	NANGO_TMP=
}

# Prints the last lines of the cluster's log (to stderr).
nango_show_pg_log() {
	if [[ -n $NANGO_PGDATA && -f $NANGO_PGDATA/../log ]]; then
		echo "--- last ${1:-40} lines of the PostgreSQL log" >&2
		tail -n "${1:-40}" "$NANGO_PGDATA/../log" >&2
	fi
}

# The EXIT trap: on failure shows the log's tail, then cleans up and exits
# with the script's status.
nango_stop_all() {
	local rc=$?
	trap - EXIT
	set +e
	if [[ $rc -ne 0 ]]; then
		nango_show_pg_log 40
	fi
	nango_cleanup
	exit "$rc"
}
