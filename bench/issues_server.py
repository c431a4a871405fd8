#!/usr/bin/env python3
"""test/api_server.py's server, for the benchmark (bench/run).

    issues_server.py --issues N --port-file F --log F

Runs the test API server's own code (imported from test/api_server.py:
the same routes, the same GitHub-shaped issues, the same Link paging and
/control/set) with two differences that only change how fast it answers:

  - the records of a dataset are handed to a request as a shallow copy of
    the list, not a deep copy of every record: the deep copy costs O(N) a
    request (about 0.3 s a page of 100 at N = 10000), which would make the
    benchmark measure the test server rather than nango.  The issues route
    only filters, sorts and renders the records (render_issue copies what
    it changes), so what it serves is the same;
  - --issues is not capped at 10000.

Listens on 127.0.0.1 only, on a free port written to --port-file.
"""

import argparse
import os
import signal
import sys

sys.dont_write_bytecode = True         # leave no __pycache__ in test/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "test"))
import api_server as api          # noqa: E402


class BenchState(api.State):
    """api_server's State with cheap snapshots."""

    def records(self, dataset):
        if dataset not in ("items", "slow", "issues"):
            raise api.ApiError(400, "unknown dataset %r" % dataset)
        with self.lock:
            return list(self.data[dataset])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--issues", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=20240301)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    if not 1 <= args.issues <= 1000000:
        ap.error("--issues must be 1..1000000")

    api.LOG_STREAM = open(args.log, "a", encoding="utf-8")
    api.STATE = BenchState(args.seed, args.issues)

    def stop(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    server = api.Server(("127.0.0.1", 0), api.Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.replace(tmp, args.port_file)
    try:
        server.serve_forever(poll_interval=0.5)
    except SystemExit:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
