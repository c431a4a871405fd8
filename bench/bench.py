#!/usr/bin/env python3
"""The measuring half of bench/run (which starts the cluster and the API).

    bench.py --records N --work DIR

Needs PGHOST, PGPORT, PGUSER (a superuser) and NANGO_API_URL in the
environment, psql on PATH, and to run as root or as the postgres user (it
reads /proc/<pid>/status of server processes).

Three cases, each on identical pages for nango and the baseline:

  first      all records inserted into an empty table
  unchanged  the same pages again: nothing to write
  changed    the same pages after ~10% of the issues got a new title

For each case:
  http       the pages fetched alone, one after the other, following the
             Link header, by this script (the same requests a run makes);
             the bodies are kept on disk for the baseline
  nango      nango.trigger_sync + nango.wait_for_run on table issues_nango,
             timed by the client from trigger to wait's return; the run
             worker's memory is sampled from /proc while it lives
  baseline   one psql session executing, page after page, each page in its
             own transaction, a prepared set-based upsert of the same page
             text into issues_base (INSERT ... SELECT FROM
             jsonb_to_recordset ... ON CONFLICT DO UPDATE ... WHERE IS
             DISTINCT FROM); its backend's memory is sampled the same way

and checks that both tables end up with the same rows.  Prints a report;
--json F also writes every number to F.
"""

import argparse
import glob
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse

COLUMNS = [
    # column, type, jsonb_to_recordset field, how the baseline reads it
    ("id", "bigint PRIMARY KEY", "id bigint", "r.id"),
    ("number", "integer", "number integer", "r.number"),
    ("title", "text", "title text", "r.title"),
    ("state", "text", "state text", "r.state"),
    ("author", "text", '"user" jsonb', "r.\"user\" ->> 'login'"),
    ("labels", "jsonb", "labels jsonb", "r.labels"),
    ("locked", "boolean", "locked boolean", "r.locked"),
    ("comments", "integer", "comments integer", "r.comments"),
    ("body", "text", "body text", "r.body"),
    ("created_at", "timestamptz", "created_at timestamptz", "r.created_at"),
    ("updated_at", "timestamptz", "updated_at timestamptz", "r.updated_at"),
    ("closed_at", "timestamptz", "closed_at timestamptz", "r.closed_at"),
    ("author_association", "text", "author_association text",
     "r.author_association"),
    ("state_reason", "text", "state_reason text", "r.state_reason"),
    ("reactions", "jsonb", "reactions jsonb", "r.reactions"),
]
PER_PAGE = 100
DB = "nango_bench"
SAMPLE_EVERY = 0.01             # seconds between /proc samples
RUN_TIMEOUT = "15 minutes"      # wait_for_run's bound
QUOTE_TAG = "$nango_bench_page$"
MARK = "SELECT 'mark ' || extract(epoch FROM clock_timestamp());\n"


def log(msg):
    print("==> " + msg, flush=True)


def psql(sql, db=DB, timeout=1800):
    """Runs sql with psql; returns its unaligned, tuples-only output."""
    out = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db,
         "-c", sql], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        sys.exit("psql failed: %s\n%s" % (sql[:200], out.stderr))
    return out.stdout.strip()


# ------------------------------------------------------------ memory

class Sampler(threading.Thread):
    """Samples /proc/<pid>/status of the process find_pid() names, from
    the time it appears until it exits or stop() is called: the last
    VmHWM seen (peak resident set, shared buffers it touched included) and
    the largest RssAnon (private memory: what palloc got)."""

    def __init__(self, find_pid):
        super().__init__(daemon=True)
        self.find_pid = find_pid
        self.pid = None
        self.hwm_kb = 0
        self.anon_kb = 0
        self.samples = 0
        self.done = threading.Event()

    def run(self):
        while self.pid is None and not self.done.is_set():
            self.pid = self.find_pid()
            if self.pid is None:
                time.sleep(SAMPLE_EVERY / 2)
        while self.pid is not None:
            try:
                with open("/proc/%d/status" % self.pid) as f:
                    text = f.read()
            except OSError:
                break
            m = re.search(r"^VmHWM:\s+(\d+)", text, re.M)
            a = re.search(r"^RssAnon:\s+(\d+)", text, re.M)
            if m is None or a is None:      # a zombie: it has ended
                break
            self.hwm_kb = max(self.hwm_kb, int(m.group(1)))
            self.anon_kb = max(self.anon_kb, int(a.group(1)))
            self.samples += 1
            if self.done.is_set():
                break
            time.sleep(SAMPLE_EVERY)

    def stop(self):
        self.done.set()
        self.join(10)


POSTMASTER = None               # our cluster's postmaster pid (main sets it)


def find_run_worker():
    """The pid of a live "nango run" background worker of our cluster (a
    child of its postmaster: other clusters may run on the machine)."""
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        pid = int(path.split("/")[2])
        try:
            with open(path, "rb") as f:
                cmd = f.read()
            if not (cmd.startswith(b"postgres: ") and b"nango run" in cmd):
                continue
            with open("/proc/%d/status" % pid) as f:
                m = re.search(r"^PPid:\s+(\d+)", f.read(), re.M)
        except OSError:
            continue
        if m and int(m.group(1)) == POSTMASTER:
            return pid
    return None


def find_pid_in_file(path):
    def find():
        try:
            with open(path) as f:
                text = f.read().strip()
            return int(text) if text else None
        except (OSError, ValueError):
            return None
    return find


# ------------------------------------------------------------ the API

def fetch_pages(api, outdir):
    """Fetches every page of the issues, following the Link header, on one
    keep-alive connection; stores page k as outdir/k.json.  Returns
    (seconds, pages, records, bytes)."""
    os.makedirs(outdir, exist_ok=True)
    for old in glob.glob(os.path.join(outdir, "*.json")):
        os.unlink(old)
    base = urllib.parse.urlsplit(api)
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=60)
    path = "/repos/acme/app/issues?per_page=%d" % PER_PAGE
    pages = records = size = 0
    start = time.monotonic()
    while path is not None and pages < 100000:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            sys.exit("GET %s: HTTP %d" % (path, resp.status))
        page = json.loads(body)
        pages += 1
        records += len(page)
        size += len(body)
        with open(os.path.join(outdir, "%06d.json" % pages), "wb") as f:
            f.write(body)
        path = None
        m = re.search(r'<([^>]*)>;\s*rel="next"', resp.getheader("Link", ""))
        if m:
            u = urllib.parse.urlsplit(m.group(1))
            path = u.path + ("?" + u.query if u.query else "")
    seconds = time.monotonic() - start
    conn.close()
    return seconds, pages, records, size


def change_titles(api, every):
    """Gives every every-th issue a new title at the API; returns how many."""
    base = urllib.parse.urlsplit(api)
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=60)
    conn.request("GET", "/control/count?dataset=issues")
    total = json.loads(conn.getresponse().read())["count"]
    n = 0
    for number in range(every, total + 1, every):
        q = urllib.parse.urlencode({"dataset": "issues", "number": number,
                                    "field": "title",
                                    "value": "Changed by the benchmark %d"
                                    % number})
        conn.request("GET", "/control/set?" + q)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            sys.exit("/control/set: HTTP %d" % resp.status)
        n += 1
    conn.close()
    return n


# ------------------------------------------------------------ the two sides

def setup(api):
    psql("DROP DATABASE IF EXISTS %s" % DB, db="postgres")
    psql("CREATE DATABASE %s" % DB, db="postgres")
    cols = ", ".join("%s %s" % (c[0], c[1]) for c in COLUMNS)
    psql("CREATE EXTENSION nango; CREATE EXTENSION pg_stat_statements; "
         "CREATE TABLE issues_nango (%s); CREATE TABLE issues_base (%s)"
         % (cols, cols))
    url = "%s/repos/acme/app/issues?per_page=%d" % (api, PER_PAGE)
    sql = ("SELECT nango.add_sync(name => 'bench', url => %s, "
           "target_table => 'issues_nango', unique_key => '{id}', "
           "frequency => '1 day', paging => '{\"type\": \"link_header\"}', "
           "columns => '{\"author\": \"user.login\"}'); "
           "SELECT nango.pause_sync('bench')" % quote(url))
    psql(sql)       # one transaction: no run starts before the first case


def quote(text):
    return "'" + text.replace("'", "''") + "'"


def run_nango(first):
    """One timed run: trigger_sync + wait_for_run.  Returns (seconds, run
    row as a dict, Sampler)."""
    sampler = Sampler(find_run_worker)
    sampler.start()
    start = time.monotonic()
    run_id = psql("SELECT nango.resume_sync('bench'); "
                  "SELECT nango.trigger_sync('bench')" if first else
                  "SELECT nango.trigger_sync('bench')").splitlines()[-1]
    row = psql("SELECT row_to_json(r) FROM nango.wait_for_run(%s, '%s') r"
               % (run_id, RUN_TIMEOUT))
    seconds = time.monotonic() - start
    sampler.stop()
    run = json.loads(row)
    if run["status"] != "success":
        sys.exit("nango run %s: %s: %s" % (run_id, run["status"],
                                            run.get("error")))
    return seconds, run, sampler


def baseline_statement():
    names = ", ".join(c[0] for c in COLUMNS)
    fields = ", ".join(c[2] for c in COLUMNS)
    values = ", ".join(c[3] for c in COLUMNS)
    rest = [c[0] for c in COLUMNS if c[0] != "id"]
    sets = ", ".join("%s = excluded.%s" % (c, c) for c in rest)
    old = ", ".join("t.%s" % c for c in rest)
    new = ", ".join("excluded.%s" % c for c in rest)
    return ("PREPARE up(text) AS\n"
            "INSERT INTO issues_base AS t (%s)\n"
            "SELECT %s\n"
            "FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS r(%s)\n"
            "ON CONFLICT (id) DO UPDATE SET %s\n"
            "WHERE (%s) IS DISTINCT FROM (%s);\n"
            % (names, values, fields, sets, old, new))


def write_baseline_script(pagedir, script, pidfile):
    """The psql script of the baseline: its backend's pid to pidfile, the
    prepared upsert, then one EXECUTE a page (autocommit: a transaction a
    page, as nango commits a page at a time)."""
    with open(script, "w", encoding="utf-8") as out:
        out.write("\\set ON_ERROR_STOP 1\n\\pset tuples_only on\n"
                  "\\pset format unaligned\n")
        out.write("SELECT pg_backend_pid() \\g %s\n" % pidfile)
        out.write("SELECT pg_sleep(0.2);\n")    # the sampler finds us
        out.write(baseline_statement())
        out.write(MARK)
        for path in sorted(glob.glob(os.path.join(pagedir, "*.json"))):
            with open(path, encoding="utf-8") as f:
                body = f.read()
            if QUOTE_TAG in body:
                sys.exit("page %s holds %s" % (path, QUOTE_TAG))
            out.write("EXECUTE up(%s%s%s);\n" % (QUOTE_TAG, body, QUOTE_TAG))
        out.write(MARK)
        out.write("SELECT pg_sleep(0.1);\n")    # a last sample


def run_baseline(pagedir, workdir):
    """Runs the baseline script; returns (seconds, inserted+updated rows,
    Sampler).  The time is the server's clock between two marks the script
    selects, after PREPARE and after the last page (the pg_sleeps are
    outside)."""
    script = os.path.join(workdir, "baseline.sql")
    pidfile = os.path.join(workdir, "baseline.pid")
    if os.path.exists(pidfile):
        os.unlink(pidfile)
    write_baseline_script(pagedir, script, pidfile)
    sampler = Sampler(find_pid_in_file(pidfile))
    sampler.start()
    out = subprocess.run(["psql", "-X", "-d", DB, "-f", script],
                         capture_output=True, text=True, timeout=1800)
    sampler.stop()
    if out.returncode != 0:
        sys.exit("the baseline failed:\n" + out.stderr[-2000:])
    marks = [float(m) for m in re.findall(r"^mark ([0-9.]+)$", out.stdout,
                                          re.M)]
    written = sum(int(n) for n in re.findall(r"^INSERT 0 (\d+)$",
                                              out.stdout, re.M))
    if len(marks) != 2:
        sys.exit("the baseline printed no marks:\n" + out.stdout[-2000:])
    return marks[1] - marks[0], written, sampler


def statement_times():
    """Server-side execution time (ms) and calls since the last reset, from
    pg_stat_statements (track = all: statements run through SPI too):
    nango's page statement, nango's other SPI statements (catalog,
    checkpoint), and the baseline's upsert.  Then resets the counters."""
    row = psql("""
SELECT coalesce(sum(total_exec_time) FILTER (WHERE q LIKE 'WITH rec%'), 0),
       coalesce(sum(calls) FILTER (WHERE q LIKE 'WITH rec%'), 0),
       coalesce(sum(total_exec_time) FILTER (WHERE q NOT LIKE 'WITH rec%'
            AND q NOT LIKE '%issues_base%' AND q !~ 'pg_stat_statements'
            AND q !~ 'nango\\.(trigger_sync|wait_for_run|resume_sync)'), 0),
       coalesce(sum(total_exec_time) FILTER (WHERE q LIKE '%issues_base%'
), 0),
       coalesce(sum(calls) FILTER (WHERE q LIKE '%issues_base%'
), 0)
FROM (SELECT ltrim(query) AS q, total_exec_time, calls
      FROM pg_stat_statements) s""")
    psql("SELECT pg_stat_statements_reset()")
    v = row.split("|")
    return {"page_ms": float(v[0]), "page_calls": int(float(v[1])),
            "other_ms": float(v[2]), "base_ms": float(v[3]),
            "base_calls": int(float(v[4]))}


def top_statements(n):
    """The n statements that took longest, for the log."""
    return psql("SELECT round(total_exec_time) || ' ms, ' || calls || "
                "' calls: ' || left(regexp_replace(query, '\\s+', ' ', 'g'),"
                " 90) FROM pg_stat_statements ORDER BY total_exec_time DESC "
                "LIMIT %d" % n)


def same_rows():
    """Rows in one table and not in the other (0 when they agree)."""
    return int(psql("SELECT (SELECT count(*) FROM (TABLE issues_nango "
                    "EXCEPT ALL TABLE issues_base) a) + "
                    "(SELECT count(*) FROM (TABLE issues_base "
                    "EXCEPT ALL TABLE issues_nango) b)"))


# ------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--pgdata", required=True)
    ap.add_argument("--json")
    args = ap.parse_args()
    global POSTMASTER
    with open(os.path.join(args.pgdata, "postmaster.pid")) as f:
        POSTMASTER = int(f.readline())
    api = os.environ["NANGO_API_URL"]
    os.makedirs(args.work, exist_ok=True)
    pagedir = os.path.join(args.work, "pages")

    log("database %s: extension, tables issues_nango and issues_base, "
        "sync bench" % DB)
    setup(api)
    results = []
    for case in ("first", "unchanged", "changed"):
        # Both tables start each case freshly analyzed (autovacuum may
        # still come by during a run, on either side).
        psql("ANALYZE issues_nango, issues_base")
        if case == "changed":
            n = change_titles(api, 10)
            log("changed the title of %d issues at the API" % n)
        http_s, pages, records, size = fetch_pages(api, pagedir)
        log("%s: fetched %d pages, %d records, %.1f MB alone in %.2f s"
            % (case, pages, records, size / 1e6, http_s))
        psql("SELECT pg_stat_statements_reset()")
        nango_s, run, ns = run_nango(case == "first")
        if case == "first":
            log("slowest statements of the nango run (pg_stat_statements):\n"
                + top_statements(6))
        st = statement_times()
        log("%s: nango %.2f s (run %s: %s inserted, %s updated, %s "
            "unchanged; worker pid %s, %d samples)"
            % (case, nango_s, run["id"], run["inserted"], run["updated"],
               run["unchanged"], ns.pid, ns.samples))
        base_s, written, bs = run_baseline(pagedir, args.work)
        st["base_ms"] = statement_times()["base_ms"]
        log("%s: baseline %.2f s (%d rows inserted or updated; backend "
            "pid %s, %d samples)" % (case, base_s, written, bs.pid,
                                     bs.samples))
        if run["inserted"] + run["updated"] != written:
            sys.exit("%s: nango wrote %d rows, the baseline %d" % (
                case, run["inserted"] + run["updated"], written))
        diff = same_rows()
        if diff != 0:
            sys.exit("%s: the tables differ in %d rows" % (case, diff))
        run_s = run_seconds(run["id"])
        results.append({
            "case": case, "records": records, "pages": pages,
            "bytes": size, "http_s": http_s, "nango_s": nango_s,
            "nango_run_s": run_s, "baseline_s": base_s,
            "nango_inserted": run["inserted"],
            "nango_updated": run["updated"],
            "nango_unchanged": run["unchanged"],
            "baseline_written": written,
            "nango_page_stmt_s": st["page_ms"] / 1000,
            "nango_page_stmt_calls": st["page_calls"],
            "nango_other_stmt_s": st["other_ms"] / 1000,
            "baseline_stmt_s": st["base_ms"] / 1000,
            "nango_hwm_kb": ns.hwm_kb, "nango_anon_kb": ns.anon_kb,
            "baseline_hwm_kb": bs.hwm_kb, "baseline_anon_kb": bs.anon_kb,
        })
    report(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def run_seconds(run_id):
    return float(psql("SELECT extract(epoch FROM finished_at - started_at) "
                      "FROM nango.sync_runs WHERE id = %s" % run_id))


def report(results):
    print()
    print("per record, microseconds (wall time / records):")
    fmt = "%-10s %8s %8s %8s %8s %8s %7s %7s"
    print(fmt % ("case", "records", "http", "nango", "n.run", "base",
                 "n/base", "http%"))
    for r in results:
        us = 1e6 / r["records"]
        print(fmt % (r["case"], r["records"], "%.1f" % (r["http_s"] * us),
                     "%.1f" % (r["nango_s"] * us),
                     "%.1f" % (r["nango_run_s"] * us),
                     "%.1f" % (r["baseline_s"] * us),
                     "%.2f" % (r["nango_s"] / r["baseline_s"]),
                     "%.0f" % (100 * r["http_s"] / r["nango_s"])))
    print()
    print("where the time goes, microseconds per record (server-side SQL "
          "execution from pg_stat_statements):")
    fmt = "%-10s %8s %8s %8s %8s %8s %8s"
    print(fmt % ("case", "nango", "http", "n.page", "n.other", "n.rest",
                 "base"))
    for r in results:
        us = 1e6 / r["records"]
        rest = (r["nango_s"] - r["http_s"] - r["nango_page_stmt_s"]
                - r["nango_other_stmt_s"])
        print(fmt % (r["case"], "%.1f" % (r["nango_s"] * us),
                     "%.1f" % (r["http_s"] * us),
                     "%.1f" % (r["nango_page_stmt_s"] * us),
                     "%.1f" % (r["nango_other_stmt_s"] * us),
                     "%.1f" % (rest * us),
                     "%.1f" % (r["baseline_stmt_s"] * us)))
    print("n.page: nango's page statement; n.other: its other SPI "
          "statements; n.rest:")
    print("nango - http - n.page - n.other (worker start, parsing, "
          "commits); base: the")
    print("baseline's upsert.  page statement / baseline upsert:",
          ", ".join("%s %.2f" % (r["case"], r["nango_page_stmt_s"]
                                 / max(r["baseline_stmt_s"], 1e-9))
                    for r in results))
    print()
    print("memory, MB (peak RSS = VmHWM; private = largest RssAnon seen):")
    fmt = "%-10s %10s %10s %10s %10s %8s %8s"
    print(fmt % ("case", "n.peak", "n.priv", "b.peak", "b.priv",
                 "peak n/b", "priv n/b"))
    for r in results:
        print(fmt % (r["case"], "%.1f" % (r["nango_hwm_kb"] / 1024),
                     "%.1f" % (r["nango_anon_kb"] / 1024),
                     "%.1f" % (r["baseline_hwm_kb"] / 1024),
                     "%.1f" % (r["baseline_anon_kb"] / 1024),
                     "%.2f" % (r["nango_hwm_kb"] / max(r["baseline_hwm_kb"], 1)),
                     "%.2f" % (r["nango_anon_kb"] / max(r["baseline_anon_kb"], 1))))
    print()
    print("http: the pages fetched alone; nango: trigger_sync to "
          "wait_for_run's return;")
    print("n.run: the run's finished_at - started_at; base: the baseline's "
          "upserts;")
    print("n/base: nango / base; http%: http / nango (the part of nango's "
          "time the API alone takes).")


if __name__ == "__main__":
    main()
