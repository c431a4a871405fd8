#!/usr/bin/env python3
"""A local HTTP API for nango's tests and demo (Python 3 standard library).

Serves deterministic data on 127.0.0.1 only, until killed (SIGTERM or SIGINT
end it at once).

    api_server.py [--port N] [--port-file F] [--log F] [--seed N] [--issues N]

--port 0 (the default) picks a free port; --port-file F receives the chosen
port (written atomically once the socket listens).  Requests are logged to
stderr, or to --log F.

The same file is a tiny client for tests that must poke the server (say from
psql's \\!):

    api_server.py get  PATH [--url BASE]    prints the body of GET BASE+PATH
    api_server.py post PATH [--url BASE]    the same with POST

BASE defaults to $NANGO_API_URL.  The body is printed as received, plus a
newline; the exit status is 0 for 2xx, else 1.

Every JSON body is UTF-8 (content-type: application/json; charset=utf-8),
numbers are written exactly (19.99 stays 19.99, integers keep every digit).
Responses to GET carry a weak ETag (If-None-Match gives 304) and GitHub-like
X-RateLimit-* headers.  Unknown paths give 404 {"message": "Not Found", ...};
a bad parameter gives 400 {"message": "..."}.

GitHub-shaped issues (240 by default) of repository acme/app
-------------------------------------------------------------
GET /repos/acme/app/issues?per_page=N&page=P&state=S&labels=L&since=T
                          &sort=created|updated&direction=desc|asc
    A JSON array of issues shaped like GitHub's REST API (url, repository_url,
    labels_url, comments_url, events_url, html_url, id, node_id, number,
    title, user{login, id, node_id, avatar_url, ..., type, site_admin},
    labels[{id, node_id, url, name, color, default, description}], state,
    locked, assignee, assignees, milestone, comments, created_at, updated_at,
    closed_at, author_association, active_lock_reason, body, reactions,
    timeline_url, performed_via_github_app, state_reason), newest first.
    per_page defaults to 30, at most 100; page starts at 1; a page past the
    end is [].  Unlike GitHub, state defaults to "all" (open, closed, all).
    Also served as /repositories/1000/issues, the path that the Link
    headers name (as GitHub's name the repository by its id).
    Link header as GitHub writes it, with absolute URLs built on the Host
    the request came with: rel="prev", "next", "last", "first" (no next or
    last on the last page, no prev or first on the first).
GET /repos/acme/app/issues/NUMBER      one issue (404 if none)
GET /repos/acme/app/labels             the repository's labels

The "items": 25 fixed records for every paging type
----------------------------------------------------
Item 1, exactly as sent:
    {"id":1,"itemName":"Walnut desk","price":19.99,"quantity":7,
     "big":18446744073709551617,"viewCount":9007199254740993,
     "createdAt":"2024-03-01T09:00:00Z","updatedAt":"2024-03-08T10:00:00Z",
     "user":{"login":"alice","id":101},"tags":["office","metal"],
     "active":true,"note":"note for item 1"}
big is 2^64 + id (needs numeric), viewCount is 2^53 + id (fits bigint, not
a double); price has two decimals, kept as written (item 60: 181.20).  note
is a string when id % 3 == 1, null when id % 3 == 0 and absent when
id % 3 == 2.  Item 7's itemName is non-ASCII ("Caf\u00e9 table \u2615").
Records are ordered by id.

Parameters every /v1 list endpoint takes:
    count=N         serve only the first N records (default all: 25, or
                    60 for /v1/slow_pages)
    tag=X           labels the request in /control/stats (ignored otherwise)
    fail_page=P     answer the P-th page (1-based) with a fault instead:
    fail=K          K = an HTTP status (default 500), "html" or "notjson"
    fail_once=1     the fault happens only the first time that exact URL is
                    requested (for resume tests)
Parameters of the endpoints with a token or a next URL:
    always_next=1   a next token/URL even on the last page (so the client
                    stops on the empty page that follows)
    end=null|absent|empty   how the last page says "no more" (default null;
                    absent drops the key, empty gives "")

GET  /v1/items                       the records as a plain array
GET  /v1/items/ID                    one record (404 if none)
GET  /v1/single                      one record as an object (id=N, default 1)
GET  /v1/next_url?limit=N&after=K    {"data": [...],
                                      "links": {"next": URL|null}}
        limit default 10 (1..100); after = records to skip (the client never
        builds it: it follows links.next).  The next URL is absolute (on the
        request's Host) unless relative=1 (then "/v1/next_url?...") or
        next_host=H:P (then on that host, for tests of a sync refusing it).
GET  /v1/cursor?limit=N&cursor=T     {"items": [...],
                                      "meta": {"next": T2|null, "has_more": b}}
        T is opaque base64 (may hold "+", "/" and "="; it must arrive
        percent-encoded); an unknown token gives 400.  No cursor: first page.
POST /v1/cursor_body                 the same, reading {"cursor": T|null,
        "limit": N} from the JSON body (the query string may add count, ...)
GET  /v1/record_cursor?limit=N&starting_after=ID
                                     {"object": "list", "data": [...],
                                      "has_more": bool}   (Stripe-like)
        records with id > ID; has_more is true when more follow, always when
        has_more_always=1.
GET  /v1/offset?offset=O&limit=L     {"results": {"items": [...]},
                                      "total": N, "offset": O, "limit": L}
        total is the record count unless total=N overrides it.  limit
        default 10 (1..100).
GET  /v1/page?page=P&per_page=S      {"data": [...], "page": P, "per_page": S,
                                      "total": N, "total_pages": K}
        pages start at 1 (at 0 with start=0); per_page default 10 (1..100);
        total=N overrides total and total_pages.
GET  /v1/link?page=P&limit=N         a plain array; Link header with
        RELATIVE URLs "</v1/link?page=2&limit=N>; rel="next"" (also prev,
        first, last).  relative=path gives "link?page=2..." (relative to the
        path), absolute=1 absolute URLs, split=1 one Link header a relation.
GET  /v1/slow_pages?page=P&per_page=N&delay=S
        the /v1/page shape over its own dataset of 60 records (ids 1..60, the
        items' shape); each page sleeps S seconds (0..30, default 0) first.

Authentication
--------------
GET /v1/auth/items    the items array; 401 {"message": "Bad credentials"}
                      unless "Authorization: Bearer test-token"
GET /v1/auth/apikey   the same, requiring "X-Api-Key: test-key"
ANY /echo?...         [{"id": I, "method": M, "path": "/echo", "query": {k: v},
                        "headers": {lower-case name: value},
                        "body": JSON|null, "body_text": raw|null}]
        (id=N sets I, default 1; a repeated query key gives a list).  With
        page=P: [] once P > pages (pages=N, default 1), I = P.  wrap=K
        answers {K: [...]} instead of the array.

Faults
------
GET /fault/html            200, text/html body
GET /fault/notjson         200, application/json, a body that is not JSON
GET /fault/empty           200, application/json, empty body
GET /fault/scalar          200, the JSON body 42
GET /fault/noarray         {"message": "ok", "count": 2} (no array)
GET /fault/twoarrays       {"data": [...], "included": [...]}
GET /fault/status?code=C   status C (200..599, default 500) with
                           {"message": ...}; retry_after=N adds Retry-After
GET /fault/loop?type=T     a pagination loop: T = next_url (default; body
        {"data", "links": {"next"}}, URLs alternate page=2, page=1, page=2),
        cursor ({"items", "meta": {"next"}}, tokens alternate A, B, A),
        link (array + Link header alternating), record_cursor ({"data",
        "has_more": true}, always records 1, 2: starting_after repeats "2")
GET /fault/badrecord       [5 items] where item 3 has "quantity": "abc"
                           (field=F&value=V change which field and text)
GET /fault/duplicates      items 1, 2, 3, 2 where the second 2 has
                           itemName "<name> (second copy)" and quantity 99
GET /fault/nullkey         items 1, 2, 3 where item 2 has "id": null
                           (missing=1 drops the key instead)
GET /fault/slow?delay=S    sleeps S seconds (0..30, default 5), then items
GET /fault/trickle?seconds=S   sends the headers, then one byte a second
                           for S seconds (1..30, default 10)
GET /fault/big?size=N      a valid JSON array larger than N bytes (default
        5 MiB, at most 256 MiB), streamed; no_length=1 omits Content-Length;
        shape=objects makes it an array of empty objects instead
GET /fault/redirect?n=N&to=PATH   N redirects (0..50), then 302 to PATH
                           (default /v1/items); host=H:P puts PATH on
                           that host (tests of a sync refusing it)
GET /fault/flaky?fail=K&key=X&code=C   the first K requests with key X get
                           status C (default 503), then the items array

Control (GET or POST; never counted in stats)
---------------------------------------------
/control/reset                 data back to the seed, stats and fault
                               counters cleared -> {"reset": true}
/control/reset_stats           stats cleared -> {"reset": true}
/control/stats                 {"total": N, "paths": {"/v1/cursor": 3, ...},
                                "tags": {"t1": 3}, "requests": [{"method",
                                "path", "query", "status"}, ...]} (the last
                                500 requests)
/control/stats?path=P          {"path": P, "count": N}
/control/stats?tag=X           {"tag": X, "count": N}
/control/set?dataset=D&id=I&field=F&value=V
        D = items (default), slow or issues (issues take number=N or id=I);
        F a dotted path (user.login); V parsed as JSON when it is JSON (42,
        null, true, "quoted") else taken as a string; unset=1 removes the
        key.  A JSON body {"dataset", "id", "field", "value"} works too.
        -> the changed record
/control/add?dataset=D&id=I    adds a generated record with that id, or the
                               JSON body as the record -> the record
/control/delete?dataset=D&id=I -> {"deleted": true|false}
/control/dump?dataset=D        every record of D (a plain array)
/control/count?dataset=D       {"dataset": D, "count": N}
"""

import argparse
import base64
import datetime
import hashlib
import json
import math
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, deque
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 10 * 1024 * 1024		# largest request body accepted
MAX_DELAY = 30.0				# longest sleep any endpoint takes
MAX_BIG = 256 * 1024 * 1024		# largest /fault/big body
RECENT = 500					# requests kept in /control/stats
ITEM_COUNT = 25
SLOW_COUNT = 60
BEARER = "Bearer test-token"
API_KEY = "test-key"
DOCS = "https://docs.github.com/rest"


class ApiError(Exception):
    """An error answer: status and GitHub-like JSON message."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class Response:
    """What a route returns: status, body (bytes, str or a JSON value)."""

    def __init__(self, body=None, status=200, headers=None,
                 content_type="application/json; charset=utf-8",
                 raw=False, stream=None, length=None):
        self.body = body
        self.status = status
        self.headers = list((headers or {}).items()) \
            if isinstance(headers, dict) else list(headers or [])
        self.content_type = content_type
        self.raw = raw            # body is already bytes/str, not JSON
        self.stream = stream      # generator of bytes chunks
        self.length = length      # Content-Length of a stream, or None


# ---------------------------------------------------------------- JSON

def to_json(value):
    """Encode value as compact JSON, writing Decimals exactly as given."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k), ensure_ascii=False) + ":" +
                              to_json(v) for k, v in value.items()) + "}"
    raise TypeError("cannot encode %r" % type(value))


def from_json(text):
    """Decode JSON keeping decimals exact (Decimal) and integers whole."""
    return json.loads(text, parse_float=Decimal)


# ---------------------------------------------------------------- data

ITEM_NAMES = [
    "Walnut desk", "Oak bookshelf", "Standing lamp", "Ergonomic chair",
    "Monitor arm", "Cable tray", "Caf\u00e9 table \u2615", "Filing cabinet",
    "Whiteboard", "Desk mat", "Footrest", "Laptop stand", "Pinboard",
    "Drawer unit", "Coat rack", "Plant pot", "Wall clock", "Task light",
    "Sofa bed", "Side table", "Rug 160x230", "Bench", "Shoe cabinet",
    "Mirror", "Stool",
]
ITEM_USERS = [("alice", 101), ("bob", 102), ("carol", 103), ("dave", 104),
              ("erin", 105)]
ITEM_TAGS = ["office", "home", "wood", "metal", "sale", "new"]


def make_item(i):
    """The fixed item record with id i (any positive i)."""
    created = datetime.datetime(2024, 3, 1, 9, 0, 0) + \
        datetime.timedelta(days=i - 1, minutes=i - 1)
    updated = created + datetime.timedelta(days=7, hours=i % 5)
    login, uid = ITEM_USERS[(i - 1) % len(ITEM_USERS)]
    price = Decimal("19.99") if i == 1 else \
        Decimal("%d.%02d" % (i * 3 + 1, (i * 17) % 100))
    rec = {
        "id": i,
        "itemName": ITEM_NAMES[(i - 1) % len(ITEM_NAMES)]
        if i <= len(ITEM_NAMES) else "Item %d" % i,
        "price": price,
        "quantity": (i * 7) % 23,
        "big": 2 ** 64 + i,
        "viewCount": 2 ** 53 + i,
        "createdAt": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "updatedAt": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "user": {"login": login, "id": uid},
        "tags": [ITEM_TAGS[(i - 1) % 6], ITEM_TAGS[(i + 2) % 6]],
        "active": i % 4 != 0,
    }
    if i % 3 == 1:
        rec["note"] = "note for item %d" % i
    elif i % 3 == 0:
        rec["note"] = None
    return rec


GH_USERS = [
    ("alice-dev", "User"), ("bob-ops", "User"), ("carol-qa", "User"),
    ("dave-ml", "User"), ("erin-sec", "User"), ("frank-ui", "User"),
    ("grace-db", "User"), ("heidi-api", "User"), ("ivan-infra", "User"),
    ("judy-docs", "User"), ("dependabot[bot]", "Bot"),
]
GH_LABELS = [
    ("bug", "d73a4a", "Something isn't working"),
    ("documentation", "0075ca", "Improvements or additions to documentation"),
    ("duplicate", "cfd3d7", "This issue or pull request already exists"),
    ("enhancement", "a2eeef", "New feature or request"),
    ("good first issue", "7057ff", "Good for newcomers"),
    ("help wanted", "008672", "Extra attention is needed"),
    ("invalid", "e4e669", "This doesn't seem right"),
    ("question", "d876e3", "Further information is requested"),
    ("wontfix", "ffffff", "This will not be worked on"),
    ("performance", "fbca04", "Slow paths and memory use"),
]
GH_MILESTONES = [(1, "v1.0"), (2, "v1.1"), (3, "v2.0")]
COMPONENTS = ["scheduler", "http client", "paging", "upsert", "catalog",
              "CLI", "docs", "worker", "config", "TLS", "JSON parser",
              "metrics"]
TITLES = [
    "{c}: crash when the response is empty",
    "{c} ignores the timeout setting",
    "Add support for {f} in {c}",
    "Docs: clarify how {c} handles {f}",
    "{c} leaks memory after many runs",
    "Slow {c} with large pages",
    "Wrong error message from {c}",
    "{c}: na\u00efve retry loop on 429",
    "Support {f}",
    "Flaky test in {c}",
    "{c} should log {f}",
    "Unicode titles break {c} \u2713",
]
FEATURES = ["ETags", "gzip", "proxies", "OAuth2", "webhooks", "rate limits",
            "cursor paging", "custom headers", "IPv6", "bulk export"]


def node_id(kind, num):
    """A legacy-format GitHub node id, e.g. base64("05:Issue1")."""
    text = "%02d:%s%d" % (len(kind) + 1, kind, num)
    return base64.b64encode(text.encode()).decode()


def gh_time(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_issues(seed, count):
    """Deterministic issues 1..count, as dicts without host-dependent URLs."""
    rng = random.Random(seed)
    t = datetime.datetime(2023, 1, 9, 8, 0, 0)
    now = datetime.datetime(2024, 6, 28, 17, 0, 0)
    issues = []
    for n in range(1, count + 1):
        t += datetime.timedelta(minutes=rng.randint(30, 2400))
        created = t
        author = rng.randrange(len(GH_USERS))
        closed = rng.random() < 0.6 * (count - n) / max(count, 1) + 0.1
        updated = created + datetime.timedelta(
            minutes=rng.randint(0, 60 * 24 * 40))
        closed_at = None
        if closed:
            closed_at = created + datetime.timedelta(
                minutes=rng.randint(10, 60 * 24 * 30))
            updated = max(updated, closed_at)
        updated = min(updated, now)
        if closed_at is not None:
            closed_at = min(closed_at, updated)
        labels = sorted(rng.sample(range(len(GH_LABELS)),
                                   rng.choice([0, 1, 1, 1, 2, 2, 3])))
        comp = rng.choice(COMPONENTS)
        title = rng.choice(TITLES).format(c=comp, f=rng.choice(FEATURES))
        title = title[0].upper() + title[1:]
        if rng.random() < 0.15:
            body = None
        else:
            body = ("### What happened\n\n%s in the %s module.\n\n"
                    "### Steps\n\n1. configure %s\n2. run it\n\n"
                    "Expected: no error. Seen on v1.%d." %
                    (title, comp, rng.choice(FEATURES), rng.randint(0, 9)))
        assignee = rng.randrange(len(GH_USERS) - 1) \
            if rng.random() < 0.4 else None
        milestone = rng.choice(GH_MILESTONES) if rng.random() < 0.3 else None
        reactions = {k: (rng.randint(0, 6) if rng.random() < 0.2 else 0)
                     for k in ["+1", "-1", "laugh", "hooray", "confused",
                               "heart", "rocket", "eyes"]}
        issues.append({
            "id": 1873000000 + n * 1009 + rng.randint(0, 999),
            "number": n,
            "title": title,
            "_author": author,
            "_labels": labels,
            "_assignee": assignee,
            "_milestone": milestone,
            "state": "closed" if closed else "open",
            "locked": rng.random() < 0.03,
            "comments": int(rng.expovariate(0.25)) % 60,
            "created_at": gh_time(created),
            "updated_at": gh_time(updated),
            "closed_at": gh_time(closed_at) if closed_at else None,
            "author_association": rng.choice(
                ["MEMBER", "CONTRIBUTOR", "CONTRIBUTOR", "NONE"]),
            "body": body,
            "_reactions": reactions,
            "state_reason": (rng.choice(["completed", "completed",
                                         "not_planned"])
                             if closed else None),
        })
    return issues


def gh_user(base, idx):
    login, kind = GH_USERS[idx]
    uid = 5800000 + idx * 7919
    u = "%s/users/%s" % (base, urllib.parse.quote(login))
    return {
        "login": login,
        "id": uid,
        "node_id": node_id("User", uid),
        "avatar_url": "https://avatars.example.com/u/%d?v=4" % uid,
        "gravatar_id": "",
        "url": u,
        "html_url": "https://github.example/%s" % login,
        "followers_url": u + "/followers",
        "following_url": u + "/following{/other_user}",
        "gists_url": u + "/gists{/gist_id}",
        "starred_url": u + "/starred{/owner}{/repo}",
        "subscriptions_url": u + "/subscriptions",
        "organizations_url": u + "/orgs",
        "repos_url": u + "/repos",
        "events_url": u + "/events{/privacy}",
        "received_events_url": u + "/received_events",
        "type": kind,
        "site_admin": False,
    }


def gh_label(base, idx):
    name, color, desc = GH_LABELS[idx]
    lid = 5000000001 + idx
    return {
        "id": lid,
        "node_id": node_id("Label", lid),
        "url": "%s/repos/acme/app/labels/%s" % (base,
                                                 urllib.parse.quote(name)),
        "name": name,
        "color": color,
        "default": idx < 9,
        "description": desc,
    }


def render_issue(base, rec):
    """The issue as GitHub's API shows it, URLs built on base."""
    repo = base + "/repos/acme/app"
    n = rec["number"]
    url = "%s/issues/%d" % (repo, n)
    out = {
        "url": url,
        "repository_url": repo,
        "labels_url": url + "/labels{/name}",
        "comments_url": url + "/comments",
        "events_url": url + "/events",
        "html_url": "https://github.example/acme/app/issues/%d" % n,
        "id": rec["id"],
        "node_id": node_id("Issue", rec["id"]),
        "number": n,
        "title": rec["title"],
        "user": gh_user(base, rec["_author"]),
        "labels": [gh_label(base, i) for i in rec["_labels"]],
        "state": rec["state"],
        "locked": rec["locked"],
        "assignee": None,
        "assignees": [],
        "milestone": None,
    }
    if rec["_assignee"] is not None:
        out["assignee"] = gh_user(base, rec["_assignee"])
        out["assignees"] = [out["assignee"]]
    if rec["_milestone"] is not None:
        num, title = rec["_milestone"]
        out["milestone"] = {
            "url": "%s/milestones/%d" % (repo, num),
            "id": 9100000 + num,
            "node_id": node_id("Milestone", 9100000 + num),
            "number": num, "title": title, "state": "open",
            "description": None,
        }
    for k in ("comments", "created_at", "updated_at", "closed_at",
              "author_association"):
        out[k] = rec[k]
    out["active_lock_reason"] = "resolved" if rec["locked"] else None
    out["body"] = rec["body"]
    reactions = dict(rec["_reactions"])
    out["reactions"] = dict([("url", url + "/reactions"),
                             ("total_count", sum(reactions.values()))] +
                            list(reactions.items()))
    out["timeline_url"] = url + "/timeline"
    out["performed_via_github_app"] = None
    out["state_reason"] = rec["state_reason"]
    # Anything /control/set or /control/add put on the record, as given.
    for k, v in rec.items():
        if not k.startswith("_") and k not in out:
            out[k] = v
    return out


# ---------------------------------------------------------------- state

class State:
    """Everything the server holds; one lock guards it all."""

    def __init__(self, seed, issue_count):
        self.seed = seed
        self.issue_count = issue_count
        self.lock = threading.Lock()
        self.started = int(time.time())
        self.reset()

    def reset(self):
        with self.lock:
            self.data = {
                "items": [make_item(i) for i in range(1, ITEM_COUNT + 1)],
                "slow": [make_item(i) for i in range(1, SLOW_COUNT + 1)],
                "issues": make_issues(self.seed, self.issue_count),
            }
            self._reset_stats()
            self.flaky = Counter()
            self.failed_once = set()

    def reset_stats(self):
        with self.lock:
            self._reset_stats()

    def _reset_stats(self):
        self.paths = Counter()
        self.tags = Counter()
        self.recent = deque(maxlen=RECENT)
        self.total = 0

    def count(self, method, path, query, tag, status):
        with self.lock:
            self.total += 1
            self.paths[path] += 1
            if tag is not None:
                self.tags[tag] += 1
            self.recent.append({"method": method, "path": path,
                                "query": query, "status": status})

    def records(self, dataset):
        """A snapshot (deep copy) of a dataset's records."""
        if dataset not in ("items", "slow", "issues"):
            raise ApiError(400, "unknown dataset %r (items, slow, issues)"
                           % dataset)
        with self.lock:
            return _deep_copy(self.data[dataset])


def _deep_copy(value):
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


STATE = None
LOG_LOCK = threading.Lock()
LOG_STREAM = sys.stderr


# ---------------------------------------------------------------- helpers

def qint(params, name, default, lo, hi):
    """An integer query parameter, clamped to [lo, hi]; 400 if not one."""
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, "parameter %s must be an integer, got %r"
                       % (name, text))
    return max(lo, min(hi, value))


def qfloat(params, name, default, lo, hi):
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, "parameter %s must be a number, got %r"
                       % (name, text))
    if math.isnan(value):
        value = default
    return max(lo, min(hi, value))


def qbool(params, name):
    return params.get(name, "") not in ("", "0", "false", "no")


def with_params(path, pairs, **updates):
    """path?query from pairs, with keys in updates replaced (or appended)."""
    out = []
    seen = set()
    for k, v in pairs:
        if k in updates:
            if k not in seen:
                out.append((k, str(updates[k])))
                seen.add(k)
        else:
            out.append((k, v))
    for k, v in updates.items():
        if k not in seen:
            out.append((k, str(v)))
    return path + "?" + urllib.parse.urlencode(out)


def encode_cursor(offset):
    """An opaque token for a position; standard base64, so +, / and =."""
    return base64.b64encode(("~pos>%d?>" % offset).encode()).decode()


def decode_cursor(token):
    try:
        text = base64.b64decode(token.encode(), validate=True).decode()
        if not (text.startswith("~pos>") and text.endswith("?>")):
            raise ValueError(text)
        return int(text[5:-2])
    except Exception:
        raise ApiError(400, "invalid cursor %r" % token)


# ---------------------------------------------------------------- handler

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nango-test-api/1.0"

    def version_string(self):
        return self.server_version
    timeout = 60                # a stalled client frees its thread

    # -- plumbing

    def log_message(self, fmt, *args):
        line = "%s - [%s] %s\n" % (self.address_string(),
                                   self.log_date_time_string(), fmt % args)
        with LOG_LOCK:
            try:
                LOG_STREAM.write(line)
                LOG_STREAM.flush()
            except (OSError, ValueError):
                pass

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def read_body(self):
        """The request body as bytes (Content-Length or chunked), bounded."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks, size = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    n = int(line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    raise ApiError(400, "bad chunked encoding")
                if n == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n",
                                                            b""):
                        pass
                    break
                size += n
                if size > MAX_BODY:
                    raise ApiError(413, "request body too large")
                chunks.append(self.rfile.read(n))
                self.rfile.readline(16)
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise ApiError(400, "bad Content-Length")
        if n < 0 or n > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, "request body too large")
        return self.rfile.read(n)

    def base_url(self):
        """http://host:port as the client reached us (Host header)."""
        host = self.headers.get("Host") or ""
        allowed = set("abcdefghijklmnopqrstuvwxyz"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]")
        if not host or not set(host) <= allowed:
            host = "%s:%d" % self.server.server_address[:2]
        return "http://" + host

    def dispatch(self, method):
        split = urllib.parse.urlsplit(self.path)
        self.method = method
        self.req_path = split.path
        self.query = split.query
        self.pairs = urllib.parse.parse_qsl(split.query,
                                            keep_blank_values=True)
        self.params = dict(self.pairs)
        tag = self.params.get("tag")
        counted = not split.path.startswith("/control/")
        try:
            self.body = self.read_body() \
                if method in ("POST", "PUT", "PATCH", "DELETE") else b""
            resp = route(self)
        except ApiError as e:
            body = {"message": e.message, "documentation_url": DOCS}
            resp = Response(body, status=e.status, headers=e.headers)
        except Exception as e:          # a bug here must still answer
            self.log_message("internal error: %r", e)
            resp = Response({"message": "internal error: %s" % e},
                            status=500)
        if counted:
            STATE.count(method, split.path, split.query, tag, resp.status)
        try:
            self.send(resp)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def send(self, resp):
        """Write resp: headers, ETag and rate limits, then the body."""
        if resp.stream is not None:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            if resp.length is not None:
                self.send_header("Content-Length", str(resp.length))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            for k, v in resp.headers:
                self.send_header(k, v)
            self.end_headers()
            for chunk in resp.stream:
                self.wfile.write(chunk)
                self.wfile.flush()
            return

        if resp.body is None:
            data = b""
        elif resp.raw:
            data = resp.body if isinstance(resp.body, bytes) \
                else resp.body.encode("utf-8")
        else:
            data = to_json(resp.body).encode("utf-8")
        api = self.req_path.startswith(("/repos/", "/v1/"))
        etag = None
        if api and self.method in ("GET", "HEAD") and resp.status == 200:
            etag = 'W/"%s"' % hashlib.sha256(data).hexdigest()[:32]
            if self.headers.get("If-None-Match") == etag:
                resp.status, data = 304, b""
        self.send_response(resp.status)
        if resp.status not in (204, 304):
            self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(data)))
        if etag:
            self.send_header("ETag", etag)
            self.send_header("Cache-Control", "private, max-age=60, "
                             "s-maxage=60")
            self.send_header("Vary", "Accept, Authorization, Cookie")
        if api:
            used = STATE.total % 5000
            self.send_header("X-RateLimit-Limit", "5000")
            self.send_header("X-RateLimit-Remaining", str(5000 - used))
            self.send_header("X-RateLimit-Reset", str(STATE.started + 3600))
            self.send_header("X-RateLimit-Used", str(used))
            self.send_header("X-RateLimit-Resource", "core")
            self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
            self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in resp.headers:
            self.send_header(k, v)
        self.end_headers()
        if self.method != "HEAD" and data:
            self.wfile.write(data)


# ---------------------------------------------------------------- routes

def route(req):
    path = req.req_path.rstrip("/") or "/"
    fn = ROUTES.get(path)
    if fn is None:
        for prefix, pfn in PREFIX_ROUTES:
            if path.startswith(prefix):
                return pfn(req, path[len(prefix):])
        raise ApiError(404, "Not Found")
    methods, fn = fn
    if req.method == "HEAD" and "GET" in methods:
        pass
    elif req.method not in methods:
        raise ApiError(405, "method %s not allowed on %s; use %s"
                       % (req.method, path, ", ".join(methods)),
                       {"Allow": ", ".join(methods)})
    return fn(req)


def request_json(req):
    """The request's JSON body, or None when it has none; 400 if not JSON."""
    if not req.body.strip():
        return None
    try:
        return from_json(req.body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, "request body is not JSON: %s" % e)


# -- issues

# The repository's issues by its id, the path of GitHub's Link headers.
REPO_ID_PATH = "/repositories/1000/issues"

def issues_list(req):
    p = req.params
    per_page = qint(p, "per_page", 30, 1, 100)
    if p.get("per_page") in ("0",):
        per_page = 30
    page = qint(p, "page", 1, 1, 10 ** 6)
    state = p.get("state", "all")
    if state not in ("open", "closed", "all"):
        raise ApiError(422, "state must be open, closed or all")
    sort = p.get("sort", "created")
    if sort not in ("created", "updated", "comments"):
        raise ApiError(422, "sort must be created, updated or comments")
    direction = p.get("direction", "desc")
    if direction not in ("asc", "desc"):
        raise ApiError(422, "direction must be asc or desc")
    recs = STATE.records("issues")
    if state != "all":
        recs = [r for r in recs if r["state"] == state]
    if p.get("labels"):
        want = set(p["labels"].split(","))
        recs = [r for r in recs
                if want <= {GH_LABELS[i][0] for i in r["_labels"]}]
    if p.get("since"):
        recs = [r for r in recs if r["updated_at"] >= p["since"]]
    key = {"created": lambda r: (r["created_at"], r["number"]),
           "updated": lambda r: (r["updated_at"], r["number"]),
           "comments": lambda r: (r["comments"], r["number"])}[sort]
    recs.sort(key=key, reverse=(direction == "desc"))
    base = req.base_url()
    last = max(1, math.ceil(len(recs) / per_page))
    chunk = recs[(page - 1) * per_page:page * per_page]

    # As GitHub does, the links name the repository by its id, not the
    # path the request used: a client must follow them as they are.
    def link(pg):
        return "<%s>" % (base + with_params(REPO_ID_PATH, req.pairs,
                                            per_page=per_page, page=pg))
    links = []
    if page > 1:
        links.append('%s; rel="prev"' % link(min(page - 1, last)))
    if page < last:
        links.append('%s; rel="next"' % link(page + 1))
        links.append('%s; rel="last"' % link(last))
    if page > 1:
        links.append('%s; rel="first"' % link(1))
    headers = {}
    if links:
        headers["Link"] = ", ".join(links)
    return Response([render_issue(base, r) for r in chunk], headers=headers)


def issue_one(req, rest):
    if req.req_path.startswith("/repos/acme/app/issues/") and \
            rest.isdigit() and req.method in ("GET", "HEAD"):
        for r in STATE.records("issues"):
            if r["number"] == int(rest):
                return Response(render_issue(req.base_url(), r))
    raise ApiError(404, "Not Found")


def labels_list(req):
    base = req.base_url()
    return Response([gh_label(base, i) for i in range(len(GH_LABELS))])


# -- items and paging

def item_records(req, dataset="items"):
    recs = STATE.records(dataset)
    n = qint(req.params, "count", len(recs), 0, len(recs))
    return recs[:n]


def maybe_fail(req, page_no):
    """The fault fail_page asks for, when this is that page."""
    p = req.params
    if "fail_page" not in p or qint(p, "fail_page", 0, 0, 10 ** 6) != page_no:
        return None
    if qbool(p, "fail_once"):
        key = req.method + " " + req.path + " " + req.body.decode("latin-1")
        with STATE.lock:
            if key in STATE.failed_once:
                return None
            STATE.failed_once.add(key)
    kind = p.get("fail", "500")
    if kind == "html":
        return fault_html(req)
    if kind == "notjson":
        return fault_notjson(req)
    try:
        code = max(200, min(599, int(kind)))
    except ValueError:
        raise ApiError(400, "fail must be a status, html or notjson")
    return Response({"message": "injected failure on page %d" % page_no,
                     "documentation_url": DOCS}, status=code)


def end_token(p, value):
    """Applies end= to a 'no more pages' value: (present, value)."""
    end = p.get("end", "null")
    if end == "absent":
        return False, None
    if end == "empty":
        return True, ""
    return True, value


def items_all(req):
    return maybe_fail(req, 1) or Response(item_records(req))


def items_one(req, rest):
    if req.method not in ("GET", "HEAD") or not rest.isdigit():
        raise ApiError(404, "Not Found")
    for r in STATE.records("items"):
        if r["id"] == int(rest):
            return Response(r)
    raise ApiError(404, "Not Found")


def single(req):
    want = qint(req.params, "id", 1, -2 ** 63, 2 ** 63)
    for r in STATE.records("items"):
        if r["id"] == want:
            return maybe_fail(req, 1) or Response(r)
    raise ApiError(404, "Not Found")


def next_url(req):
    p = req.params
    recs = item_records(req)
    limit = qint(p, "limit", 10, 1, 100)
    after = qint(p, "after", 0, 0, 10 ** 6)
    fail = maybe_fail(req, after // limit + 1)
    if fail:
        return fail
    chunk = recs[after:after + limit]
    more = after + limit < len(recs) or (qbool(p, "always_next") and chunk)
    links = {}
    if more:
        url = with_params(req.req_path, req.pairs, limit=limit,
                          after=after + limit)
        if qbool(p, "relative"):
            links["next"] = url
        elif p.get("next_host"):
            # A next URL on another host (tests never follow it).
            links["next"] = "http://%s%s" % (p["next_host"], url)
        else:
            links["next"] = req.base_url() + url
    else:
        present, value = end_token(p, None)
        if present:
            links["next"] = value
    return Response({"data": chunk, "links": links})


def cursor_page(req, p, token, limit):
    recs = item_records(req)
    start = 0 if token in (None, "") else decode_cursor(token)
    fail = maybe_fail(req, start // limit + 1)
    if fail:
        return fail
    chunk = recs[start:start + limit]
    more = start + limit < len(recs)
    meta = {}
    if more or (qbool(p, "always_next") and chunk):
        meta["next"] = encode_cursor(start + limit)
    else:
        present, value = end_token(p, None)
        if present:
            meta["next"] = value
    meta["has_more"] = bool(more) or qbool(p, "has_more_always")
    return Response({"items": chunk, "meta": meta})


def cursor(req):
    p = req.params
    return cursor_page(req, p, p.get("cursor"),
                       qint(p, "limit", 10, 1, 100))


def cursor_body(req):
    body = request_json(req) or {}
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    token = body.get("cursor")
    if token is not None and not isinstance(token, str):
        raise ApiError(400, "cursor must be a string or null")
    limit = body.get("limit", req.params.get("limit", 10))
    return cursor_page(req, req.params, token,
                       qint({"limit": str(limit)}, "limit", 10, 1, 100))


def record_cursor(req):
    p = req.params
    recs = item_records(req)
    limit = qint(p, "limit", 10, 1, 100)
    start = 0
    if p.get("starting_after"):
        after = qint(p, "starting_after", 0, -2 ** 63, 2 ** 63)
        start = len(recs)
        for i, r in enumerate(recs):
            if isinstance(r.get("id"), int) and r["id"] > after:
                start = i
                break
    fail = maybe_fail(req, start // limit + 1)
    if fail:
        return fail
    chunk = recs[start:start + limit]
    more = start + limit < len(recs) or qbool(p, "has_more_always") or \
        qbool(p, "always_next")
    return Response({"object": "list", "url": "/v1/record_cursor",
                     "data": chunk, "has_more": bool(more)})


def offset(req):
    p = req.params
    recs = item_records(req)
    limit = qint(p, "limit", 10, 1, 100)
    off = qint(p, "offset", 0, 0, 10 ** 6)
    fail = maybe_fail(req, off // limit + 1)
    if fail:
        return fail
    total = qint(p, "total", len(recs), 0, 10 ** 9)
    return Response({"results": {"items": recs[off:off + limit]},
                     "total": total, "offset": off, "limit": limit})


def page_shape(req, recs):
    p = req.params
    start = 0 if p.get("start") == "0" else 1
    size = qint(p, "per_page", 10, 1, 100)
    page = qint(p, "page", start, start, 10 ** 6)
    fail = maybe_fail(req, page - start + 1)
    if fail:
        return fail
    total = qint(p, "total", len(recs), 0, 10 ** 9)
    first = (page - start) * size
    return Response({"data": recs[first:first + size], "page": page,
                     "per_page": size, "total": total,
                     "total_pages": math.ceil(total / size)})


def page(req):
    return page_shape(req, item_records(req))


def slow_pages(req):
    time.sleep(qfloat(req.params, "delay", 0.0, 0.0, MAX_DELAY))
    return page_shape(req, item_records(req, "slow"))


def link(req):
    p = req.params
    recs = item_records(req)
    limit = qint(p, "limit", 10, 1, 100)
    pg = qint(p, "page", 1, 1, 10 ** 6)
    fail = maybe_fail(req, pg)
    if fail:
        return fail
    chunk = recs[(pg - 1) * limit:pg * limit]
    last = max(1, math.ceil(len(recs) / limit))

    def url(n):
        u = with_params(req.req_path, req.pairs, page=n, limit=limit)
        if qbool(p, "absolute"):
            return req.base_url() + u
        if p.get("relative") == "path":
            return u.rsplit("/", 1)[1]
        return u
    rels = []
    if pg > 1:
        rels.append((url(min(pg - 1, last)), "prev"))
    if pg < last or (qbool(p, "always_next") and chunk):
        rels.append((url(pg + 1), "next"))
    rels.append((url(last), "last"))
    rels.append((url(1), "first"))
    parts = ['<%s>; rel="%s"' % r for r in rels]
    if qbool(p, "split"):
        headers = [("Link", x) for x in parts]
    else:
        headers = [("Link", ", ".join(parts))]
    return Response(chunk, headers=headers)


# -- auth and echo

def auth_items(req):
    if req.headers.get("Authorization") != BEARER:
        raise ApiError(401, "Bad credentials",
                       {"WWW-Authenticate": 'Bearer realm="nango-test"'})
    return Response(item_records(req))


def auth_apikey(req):
    if req.headers.get("X-Api-Key") != API_KEY:
        raise ApiError(401, "Bad credentials")
    return Response(item_records(req))


def echo(req):
    p = req.params
    if "page" in p:
        pg = qint(p, "page", 1, -10 ** 6, 10 ** 6)
        if pg > qint(p, "pages", 1, 0, 10 ** 6):
            return Response([])
        rid = pg
    else:
        rid = qint(p, "id", 1, -2 ** 63, 2 ** 63)
    query = {}
    for k, v in req.pairs:
        if k in query:
            if not isinstance(query[k], list):
                query[k] = [query[k]]
            query[k].append(v)
        else:
            query[k] = v
    headers = {}
    for k, v in req.headers.items():
        headers[k.lower()] = v
    body, text = None, None
    if req.body:
        text = req.body.decode("utf-8", "replace")
        try:
            body = from_json(text)
            text = None
        except ValueError:
            pass
    records = [{"id": rid, "method": req.method, "path": req.req_path,
                "query": query, "headers": headers, "body": body,
                "body_text": text}]
    if p.get("wrap"):
        return Response({p["wrap"]: records})
    return Response(records)


# -- faults

def fault_html(req):
    html = ("<!DOCTYPE html>\n<html><head><title>Sign in</title></head>"
            "<body><h1>Please sign in</h1><p>This page needs a login."
            "</p></body></html>\n")
    return Response(html, content_type="text/html; charset=utf-8", raw=True)


def fault_notjson(req):
    return Response("{\"data\": [1, 2, 3]  <- truncated by a proxy",
                    raw=True)


def fault_empty(req):
    return Response(b"", raw=True)


def fault_scalar(req):
    return Response(42)


def fault_noarray(req):
    return Response({"message": "ok", "count": 2})


def fault_twoarrays(req):
    recs = item_records(req)
    return Response({"data": recs[:3], "included": recs[3:5]})


def fault_status(req):
    p = req.params
    code = qint(p, "code", 500, 200, 599)
    headers = {}
    if p.get("retry_after"):
        headers["Retry-After"] = str(qint(p, "retry_after", 1, 0, 86400))
    messages = {400: "Bad Request", 401: "Bad credentials",
                403: "Forbidden", 404: "Not Found", 422: "Validation Failed",
                429: "API rate limit exceeded", 500: "Server Error",
                502: "Bad Gateway", 503: "Service Unavailable"}
    if code in (204, 304):
        return Response(None, status=code, headers=headers)
    return Response({"message": messages.get(code, "status %d" % code),
                     "documentation_url": DOCS},
                    status=code, headers=headers)


def fault_loop(req):
    p = req.params
    kind = p.get("type", "next_url")
    recs = item_records(req)
    pg = qint(p, "page", 1, 1, 2)
    chunk = recs[(pg - 1) * 2:pg * 2]
    other = 2 if pg == 1 else 1
    if kind == "next_url":
        return Response({"data": chunk, "links": {
            "next": with_params(req.req_path, req.pairs, page=other)}})
    if kind == "link":
        return Response(chunk, headers={"Link": '<%s>; rel="next"' %
                                        with_params(req.req_path, req.pairs,
                                                    page=other)})
    if kind == "cursor":
        tok = p.get("cursor") or "A"
        chunk = recs[:2] if tok != "B" else recs[2:4]
        return Response({"items": chunk,
                         "meta": {"next": "B" if tok != "B" else "A",
                                  "has_more": True}})
    if kind == "record_cursor":
        return Response({"object": "list", "data": recs[:2],
                         "has_more": True})
    raise ApiError(400, "type must be next_url, link, cursor or "
                   "record_cursor")


def fault_badrecord(req):
    p = req.params
    recs = item_records(req)[:5]
    field = p.get("field", "quantity")
    value = p.get("value", "abc")
    for r in recs:
        if r["id"] == 3:
            r[field] = value
    return Response(recs)


def fault_duplicates(req):
    recs = item_records(req)[:3]
    copy = _deep_copy(recs[1])
    copy["itemName"] = copy["itemName"] + " (second copy)"
    copy["quantity"] = 99
    return Response(recs + [copy])


def fault_nullkey(req):
    recs = item_records(req)[:3]
    if qbool(req.params, "missing"):
        del recs[1]["id"]
    else:
        recs[1]["id"] = None
    return Response(recs)


def fault_slow(req):
    time.sleep(qfloat(req.params, "delay", 5.0, 0.0, MAX_DELAY))
    return Response(item_records(req))


def fault_trickle(req):
    seconds = qint(req.params, "seconds", 10, 1, int(MAX_DELAY))
    body = b"[" + b" " * (seconds - 1) + b"]"

    def gen():
        for i in range(len(body)):
            yield body[i:i + 1]
            if i + 1 < len(body):
                time.sleep(1)
    return Response(stream=gen(), length=len(body))


def fault_big(req):
    p = req.params
    size = qint(p, "size", 5 * 1024 * 1024, 0, MAX_BIG)
    head = b'[{"id": 1, "itemName": "big", "pad": "'
    tail = b'"}]'
    pad = size + 1
    block = b"x" * 65536
    if p.get("shape") == "objects":
        # Many tiny objects: small as text, large once parsed.
        # pad and block are whole ",{}" units, so no chunk cuts one.
        head, tail, block = b'[{}', b']', b',{}' * 21845
        pad = (size // 3 + 1) * 3

    def gen():
        yield head
        left = pad
        while left > 0:
            n = min(left, len(block))
            yield block[:n]
            left -= n
        yield tail
    length = None if qbool(p, "no_length") else len(head) + pad + len(tail)
    return Response(stream=gen(), length=length)


def fault_redirect(req):
    p = req.params
    n = qint(p, "n", 1, 0, 50)
    to = p.get("to", "/v1/items")
    host = p.get("host")
    if not to.startswith("/"):
        raise ApiError(400, "to must be a path on this server")
    if host:
        # The last hop points at another host (tests never follow it).
        to = "http://%s%s" % (host, to)
    loc = to if n <= 1 else with_params(req.req_path, req.pairs, n=n - 1)
    if n == 0:
        loc = to
    return Response({"message": "Moved"}, status=302,
                    headers={"Location": loc})


def fault_flaky(req):
    p = req.params
    fail = qint(p, "fail", 1, 0, 1000)
    key = p.get("key", "")
    with STATE.lock:
        STATE.flaky[key] += 1
        n = STATE.flaky[key]
    if n <= fail:
        code = qint(p, "code", 503, 400, 599)
        headers = {}
        if p.get("retry_after"):
            headers["Retry-After"] = str(qint(p, "retry_after", 1, 0, 86400))
        return Response({"message": "try again (%d of %d)" % (n, fail)},
                        status=code, headers=headers)
    return Response(item_records(req))


# -- control

def control_args(req):
    """Query parameters merged with a JSON object body (body wins)."""
    args = dict(req.params)
    body = request_json(req)
    if isinstance(body, dict):
        args.update(body)
        args["_body"] = body
    elif body is not None:
        args["_body"] = body
    return args


def parse_value(text):
    if not isinstance(text, str):
        return text
    try:
        return from_json(text)
    except ValueError:
        return text


def find_record(recs, dataset, args):
    if dataset == "issues" and "number" in args:
        key, want = "number", args["number"]
    else:
        key, want = "id", args.get("id")
    if want is None:
        raise ApiError(400, "id (or number for issues) is required")
    try:
        want = int(want)
    except (TypeError, ValueError):
        raise ApiError(400, "%s must be an integer" % key)
    for i, r in enumerate(recs):
        if r.get(key) == want:
            return i
    raise ApiError(404, "no record with %s %d in %s" % (key, want, dataset))


def control_set(req):
    args = control_args(req)
    dataset = args.get("dataset", "items")
    field = args.get("field")
    if not field:
        raise ApiError(400, "field is required")
    STATE.records(dataset)      # validates the name
    with STATE.lock:
        recs = STATE.data[dataset]
        rec = recs[find_record(recs, dataset, args)]
        parts = field.split(".")
        target = rec
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        if qbool({k: str(v) for k, v in args.items()
                  if k == "unset"}, "unset"):
            target.pop(parts[-1], None)
        elif "_body" in args and isinstance(args["_body"], dict) and \
                "value" in args["_body"]:
            target[parts[-1]] = args["_body"]["value"]
        else:
            target[parts[-1]] = parse_value(args.get("value"))
        out = _deep_copy(rec)
    if dataset == "issues":
        out = render_issue(req.base_url(), out)
    return Response(out)


def control_add(req):
    args = control_args(req)
    dataset = args.get("dataset", "items")
    STATE.records(dataset)
    body = args.get("_body")
    if isinstance(body, dict) and "id" in body and "dataset" not in body:
        rec = body
    elif dataset in ("items", "slow") and args.get("id") is not None:
        try:
            rec = make_item(int(args["id"]))
        except ValueError:
            raise ApiError(400, "id must be an integer")
    else:
        raise ApiError(400, "give id=N (items, slow) or a JSON record body")
    key = "number" if dataset == "issues" else "id"
    if dataset == "issues":
        raise ApiError(400, "adding issues is not supported")
    with STATE.lock:
        recs = STATE.data[dataset]
        recs[:] = [r for r in recs if r.get(key) != rec.get(key)] + [rec]
        recs.sort(key=lambda r: (r.get(key) is None, r.get(key) or 0))
    return Response(rec)


def control_delete(req):
    args = control_args(req)
    dataset = args.get("dataset", "items")
    STATE.records(dataset)
    with STATE.lock:
        recs = STATE.data[dataset]
        try:
            del recs[find_record(recs, dataset, args)]
            deleted = True
        except ApiError as e:
            if e.status != 404:
                raise
            deleted = False
    return Response({"deleted": deleted})


def control_reset(req):
    STATE.reset()
    return Response({"reset": True})


def control_reset_stats(req):
    STATE.reset_stats()
    return Response({"reset": True})


def control_stats(req):
    p = req.params
    with STATE.lock:
        if "path" in p:
            return Response({"path": p["path"],
                             "count": STATE.paths.get(p["path"], 0)})
        if "tag" in p:
            return Response({"tag": p["tag"],
                             "count": STATE.tags.get(p["tag"], 0)})
        return Response({"total": STATE.total,
                         "paths": dict(sorted(STATE.paths.items())),
                         "tags": dict(sorted(STATE.tags.items())),
                         "requests": list(STATE.recent)})


def control_dump(req):
    dataset = req.params.get("dataset", "items")
    recs = STATE.records(dataset)
    if dataset == "issues":
        base = req.base_url()
        recs = [render_issue(base, r) for r in recs]
    return Response(recs)


def control_count(req):
    dataset = req.params.get("dataset", "items")
    return Response({"dataset": dataset,
                     "count": len(STATE.records(dataset))})


def root(req):
    return Response({"message": "nango test API; see the docstring of "
                     "test/api_server.py",
                     "issues_url": req.base_url() + "/repos/acme/app/issues"})


G = ("GET",)
GP = ("GET", "POST")
ANY = ("GET", "POST", "PUT", "PATCH", "DELETE")
ROUTES = {
    "/": (G, root),
    "/repos/acme/app/issues": (G, issues_list),
    REPO_ID_PATH: (G, issues_list),
    "/repos/acme/app/labels": (G, labels_list),
    "/v1/items": (G, items_all),
    "/v1/single": (G, single),
    "/v1/next_url": (G, next_url),
    "/v1/cursor": (G, cursor),
    "/v1/cursor_body": (("POST",), cursor_body),
    "/v1/record_cursor": (G, record_cursor),
    "/v1/offset": (G, offset),
    "/v1/page": (G, page),
    "/v1/link": (G, link),
    "/v1/slow_pages": (G, slow_pages),
    "/v1/auth/items": (G, auth_items),
    "/v1/auth/apikey": (G, auth_apikey),
    "/echo": (ANY, echo),
    "/fault/html": (G, fault_html),
    "/fault/notjson": (G, fault_notjson),
    "/fault/empty": (G, fault_empty),
    "/fault/scalar": (G, fault_scalar),
    "/fault/noarray": (G, fault_noarray),
    "/fault/twoarrays": (G, fault_twoarrays),
    "/fault/status": (ANY, fault_status),
    "/fault/loop": (G, fault_loop),
    "/fault/badrecord": (G, fault_badrecord),
    "/fault/duplicates": (G, fault_duplicates),
    "/fault/nullkey": (G, fault_nullkey),
    "/fault/slow": (G, fault_slow),
    "/fault/trickle": (G, fault_trickle),
    "/fault/big": (G, fault_big),
    "/fault/redirect": (G, fault_redirect),
    "/fault/flaky": (G, fault_flaky),
    "/control/reset": (GP, control_reset),
    "/control/reset_stats": (GP, control_reset_stats),
    "/control/stats": (GP, control_stats),
    "/control/set": (GP, control_set),
    "/control/add": (GP, control_add),
    "/control/delete": (GP, control_delete),
    "/control/dump": (GP, control_dump),
    "/control/count": (GP, control_count),
}
PREFIX_ROUTES = [
    ("/repos/acme/app/issues/", issue_one),
    ("/v1/items/", items_one),
]


# ---------------------------------------------------------------- main

class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        # A client that hangs up (a cancelled or capped transfer) is
        # expected here; anything else is still reported.
        if isinstance(sys.exc_info()[1], (BrokenPipeError,
                                           ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def client(argv):
    """api_server.py get|post PATH [--url BASE]: print the response body."""
    ap = argparse.ArgumentParser(prog="api_server.py " + argv[0])
    ap.add_argument("path")
    ap.add_argument("--url", default=os.environ.get("NANGO_API_URL"))
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args(argv[1:])
    if not args.url:
        sys.exit("api_server.py: give --url or set NANGO_API_URL")
    url = args.url.rstrip("/") + args.path
    method = argv[0].upper()
    req = urllib.request.Request(url, method=method,
                                 data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req,
                                    timeout=min(args.timeout, 60)) as r:
            body, ok = r.read(), True
    except urllib.error.HTTPError as e:
        body, ok = e.read(), False
    sys.stdout.write(body.decode("utf-8", "replace") + "\n")
    sys.stdout.flush()
    return 0 if ok else 1


def main():
    global STATE, LOG_STREAM
    if len(sys.argv) > 1 and sys.argv[1] in ("get", "post"):
        return client(sys.argv[1:])
    ap = argparse.ArgumentParser(description="nango's local test API "
                                 "(see the module docstring)")
    ap.add_argument("--port", type=int, default=0,
                    help="port on 127.0.0.1; 0 picks a free one")
    ap.add_argument("--port-file", help="write the chosen port here")
    ap.add_argument("--log", help="log requests here instead of stderr")
    ap.add_argument("--seed", type=int, default=20240301)
    ap.add_argument("--issues", type=int, default=240,
                    help="how many issues acme/app has (1..10000)")
    args = ap.parse_args()
    if not 0 <= args.port <= 65535:
        ap.error("--port must be 0..65535")
    if not 1 <= args.issues <= 10000:
        ap.error("--issues must be 1..10000")
    if args.log:
        LOG_STREAM = open(args.log, "a", encoding="utf-8")
    STATE = State(args.seed, args.issues)

    def stop(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    server = Server(("127.0.0.1", args.port), Handler)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    LOG_STREAM.write("api_server: listening on http://127.0.0.1:%d\n" % port)
    LOG_STREAM.flush()
    try:
        server.serve_forever(poll_interval=0.5)
    except SystemExit:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
