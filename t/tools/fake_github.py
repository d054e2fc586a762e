#!/usr/bin/env python3
"""A scriptable fake of the GitHub REST endpoints relyloop-pr uses.

    fake_github.py --port 0 --port-file PATH --token TOKEN --web-url URL
                   [--git-root DIR] [--api-prefix /api/v3]

Behaves as GitHub documents for:
  POST /repos/{o}/{r}/pulls                 201 {number, html_url, head, base, state, ...};
                                            422 "A pull request already exists for o:head."
                                            when an open PR has that head; 422 head invalid
                                            when --git-root is given and the branch is not
                                            in <git-root>/<o>/<r>.git
  GET  /repos/{o}/{r}/pulls?head=o:b&state= list (head/state filters; sort=created|updated,
                                            direction, per_page (≤100, default 30), page;
                                            Link rel="next"/"last"; a strong ETag per
                                            response, If-None-Match matching it → 304 with
                                            no body, as GitHub documents conditional requests)
  GET  /repos/{o}/{r}/pulls/{n}             one PR (with `merged`) or 404
  GET  /repos/{o}/{r}/hooks                 the repo's hooks (config.secret never shown)
  POST /repos/{o}/{r}/hooks                 201 hook; 422 without config.url
  POST /repos/{o}/{r}/issues/{n}/comments   201 {id, body, html_url}; 404 without the PR
Every API request must carry "Authorization: Bearer <token>" (else 401 Bad credentials).

Control (no auth):
  POST /_control/script   {"route": R, "responses": [resp...]}  appends to R's queue
        R: create_pull | list_pulls | get_pull | create_comment | any
        resp: {"status": 500, "body": {...} | "raw": "text", "headers": {...},
               "delay": seconds, "passthrough": true (delay, then behave normally),
               "apply": true (behave normally — e.g. create the PR — but answer with
               this response instead: a lost answer), "skip_auth": true}
  GET  /_control/requests every API request: {method, path, query, headers, body, route, status}
  GET  /_control/pulls    the PRs
  POST /_control/pull     {"repo": "o/r", "number": n, "state": "open"|"closed",
                           "merged": bool, "merged_at": ts, "html_url": ...} upserts a PR
                           and bumps its updated_at (strictly increasing, 1 s steps)
  GET  /_control/hooks    every hook created, with "repo" and its full config
  POST /_control/reset    {"requests": true, "pulls": true, "script": true}
  POST /_control/config   {"token": "...", "git_root": "...", "next_number": {"o/r": n}}
  GET  /_control/health
python3 standard library only.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
STATE = {
    "token": "",
    "web_url": "https://github.com",
    "git_root": None,
    "api_prefix": "",
    "requests": [],
    "scripts": {},
    "pulls": {},      # "o/r" -> [pull]
    "next_number": {},  # "o/r" -> int
    "comments": [],
    "hooks": {},      # "o/r" -> [hook]
    "clock": 0,
}

DOCS = "https://docs.github.com/rest"

ROUTES = [
    ("create_pull", "POST", re.compile(r"^/repos/([^/]+)/([^/]+)/pulls$")),
    ("list_pulls", "GET", re.compile(r"^/repos/([^/]+)/([^/]+)/pulls$")),
    ("get_pull", "GET", re.compile(r"^/repos/([^/]+)/([^/]+)/pulls/(\d+)$")),
    ("create_comment", "POST", re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$")),
    ("list_hooks", "GET", re.compile(r"^/repos/([^/]+)/([^/]+)/hooks$")),
    ("create_hook", "POST", re.compile(r"^/repos/([^/]+)/([^/]+)/hooks$")),
]


def next_updated_at():
    """A timestamp later than every one handed out before (GitHub's 1 s resolution)."""
    t = max(int(time.time()), STATE.get("clock", 0) + 1)
    STATE["clock"] = t
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def pull_json(p):
    return {k: v for k, v in p.items() if not k.startswith("_")}


def branch_exists(owner, repo, branch):
    root = STATE["git_root"]
    if not root:
        return True
    git_dir = os.path.join(root, owner, repo + ".git")
    if not os.path.isdir(git_dir):
        return False
    rc = subprocess.run(["git", "--git-dir", git_dir, "rev-parse", "--verify", "--quiet",
                         "refs/heads/" + branch], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL).returncode
    return rc == 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeGitHub/1.0"

    def log_message(self, fmt, *args):  # quiet
        pass

    # -- plumbing ---------------------------------------------------------------
    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n).decode("utf-8", "replace") if n else ""

    def _send(self, status, body=None, raw=None, headers=None):
        data = raw.encode() if raw is not None else json.dumps(body if body is not None else {}).encode()
        if status == 304:
            data = b""  # Not Modified carries no body
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        return status

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PATCH(self):
        self._dispatch("PATCH")

    # -- dispatch ---------------------------------------------------------------
    def _dispatch(self, method):
        url = urlsplit(self.path)
        path = url.path
        body = self._body()
        if path.startswith("/_control/"):
            return self._control(method, path, body)
        prefix = STATE["api_prefix"]
        if prefix and path.startswith(prefix):
            path = path[len(prefix):]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        route, match = "unknown", None
        for name, m, rx in ROUTES:
            mm = rx.match(path)
            if mm and m == method:
                route, match = name, mm
                break
        rec = {
            "method": method, "path": path, "query": query, "raw_query": url.query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body, "route": route, "time": time.time(), "status": None,
        }
        with LOCK:
            STATE["requests"].append(rec)
            queue = STATE["scripts"].get(route) or STATE["scripts"].get("any")
            scripted = queue.pop(0) if queue else None

        if not (scripted and scripted.get("skip_auth")):
            auth = self.headers.get("Authorization", "")
            if auth != "Bearer " + STATE["token"]:
                rec["status"] = self._send(401, {"message": "Bad credentials",
                                                 "documentation_url": DOCS})
                return
        if scripted and scripted.get("delay"):
            time.sleep(float(scripted["delay"]))
        if scripted and not scripted.get("passthrough") and not scripted.get("apply"):
            rec["status"] = self._send(int(scripted.get("status", 200)), scripted.get("body"),
                                       scripted.get("raw"), scripted.get("headers"))
            return
        if match is None:
            answer = (404, {"message": "Not Found", "documentation_url": DOCS}, None)
        else:
            answer = getattr(self, "_" + route)(match, query, body)
        if scripted and scripted.get("apply"):
            rec["status"] = self._send(int(scripted.get("status", 200)), scripted.get("body"),
                                       scripted.get("raw"), scripted.get("headers"))
            return
        rec["status"] = self._send(answer[0], answer[1], headers=answer[2])

    # -- GitHub behaviour ---------------------------------------------------------
    def _create_pull(self, m, query, body):
        owner, repo = m.group(1), m.group(2)
        try:
            req = json.loads(body or "{}")
        except ValueError:
            return (400, {"message": "Problems parsing JSON", "documentation_url": DOCS}, None)
        missing = [f for f in ("head", "base") if not req.get(f)]
        if not req.get("title") and not req.get("issue"):
            missing.insert(0, "title")
        if missing:
            return (422, {"message": "Validation Failed", "documentation_url": DOCS,
                          "errors": [{"resource": "PullRequest", "field": f,
                                      "code": "missing_field"} for f in missing]}, None)
        head = req["head"].split(":", 1)[-1]
        base = req["base"]
        key = owner + "/" + repo
        with LOCK:
            for p in STATE["pulls"].get(key, []):
                if p["head"]["ref"] == head and p["state"] == "open":
                    return (422, {
                        "message": "Validation Failed", "documentation_url": DOCS,
                        "errors": [{"resource": "PullRequest", "code": "custom",
                                    "message": "A pull request already exists for %s:%s."
                                    % (owner, head)}]}, None)
        if not branch_exists(owner, repo, head):
            return (422, {"message": "Validation Failed", "documentation_url": DOCS,
                          "errors": [{"resource": "PullRequest", "field": "head",
                                      "code": "invalid"}]}, None)
        if not branch_exists(owner, repo, base):
            return (422, {"message": "Validation Failed", "documentation_url": DOCS,
                          "errors": [{"resource": "PullRequest", "field": "base",
                                      "code": "invalid"}]}, None)
        with LOCK:
            n = STATE["next_number"].get(key, 1)
            STATE["next_number"][key] = n + 1
            web = STATE["web_url"].rstrip("/")
            p = {
                "id": 1000 + n, "number": n, "state": "open", "title": req.get("title", ""),
                "body": req.get("body"), "draft": False,
                "url": "http://%s/repos/%s/pulls/%d" % (self.headers.get("Host", ""), key, n),
                "html_url": "%s/%s/pull/%d" % (web, key, n),
                "head": {"ref": head, "label": "%s:%s" % (owner, head)},
                "base": {"ref": base, "label": "%s:%s" % (owner, base)},
                "user": {"login": "relyloop-bot"},
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "updated_at": next_updated_at(), "closed_at": None, "merged_at": None,
                "_merged": False,
            }
            STATE["pulls"].setdefault(key, []).append(p)
        return (201, pull_json(p), {"Location": p["url"]})

    def _list_pulls(self, m, query, body):
        owner, repo = m.group(1), m.group(2)
        state = query.get("state", "open")
        head = query.get("head")
        out = []
        with LOCK:
            for p in STATE["pulls"].get(owner + "/" + repo, []):
                if state != "all" and p["state"] != state:
                    continue
                if head and p["head"]["label"] != head:
                    continue
                out.append(pull_json(p))
        sort = query.get("sort", "created")
        key = "updated_at" if sort == "updated" else "created_at"
        desc = query.get("direction", "desc") == "desc"
        out.sort(key=lambda p: (p.get(key) or "", p["number"]), reverse=desc)
        try:
            per_page = max(1, min(100, int(query.get("per_page", 30))))
            page = max(1, int(query.get("page", 1)))
        except ValueError:
            per_page, page = 30, 1
        last = max(1, (len(out) + per_page - 1) // per_page)
        items = out[(page - 1) * per_page: page * per_page]
        headers = {}
        if page < last:
            base = "http://%s%s/repos/%s/%s/pulls" % (self.headers.get("Host", ""),
                                                   STATE["api_prefix"], owner, repo)
            qs = "&".join("%s=%s" % (k, v) for k, v in sorted(query.items()) if k != "page")
            headers["Link"] = '<%s?%s&page=%d>; rel="next", <%s?%s&page=%d>; rel="last"' % (
                base, qs, page + 1, base, qs, last)
        data = json.dumps(items, sort_keys=True)
        etag = '"%s"' % hashlib.sha256((data + headers.get("Link", "")).encode()).hexdigest()
        headers["ETag"] = etag
        inm = self.headers.get("If-None-Match")
        if inm and etag in [t.strip() for t in inm.split(",")]:
            return (304, None, headers)
        return (200, items, headers)

    def _get_pull(self, m, query, body):
        owner, repo, n = m.group(1), m.group(2), int(m.group(3))
        with LOCK:
            for p in STATE["pulls"].get(owner + "/" + repo, []):
                if p["number"] == n:
                    return (200, dict(pull_json(p), merged=bool(p.get("_merged"))), None)
        return (404, {"message": "Not Found", "documentation_url": DOCS}, None)

    def _list_hooks(self, m, query, body):
        key = m.group(1) + "/" + m.group(2)
        with LOCK:
            hooks = [dict(h, config={k: v for k, v in h["config"].items() if k != "secret"})
                     for h in STATE["hooks"].get(key, [])]
        return (200, hooks, None)

    def _create_hook(self, m, query, body):
        key = m.group(1) + "/" + m.group(2)
        try:
            req = json.loads(body or "{}")
        except ValueError:
            return (400, {"message": "Problems parsing JSON", "documentation_url": DOCS}, None)
        cfg = req.get("config") if isinstance(req.get("config"), dict) else {}
        if not cfg.get("url"):
            return (422, {"message": "Validation Failed", "documentation_url": DOCS,
                          "errors": [{"resource": "Hook", "code": "custom",
                                      "message": "Config must have a url"}]}, None)
        with LOCK:
            hid = sum(len(v) for v in STATE["hooks"].values()) + 1
            h = {"id": hid, "type": "Repository", "name": req.get("name", "web"),
                 "active": bool(req.get("active", True)), "events": req.get("events", ["push"]),
                 "config": cfg}
            STATE["hooks"].setdefault(key, []).append(h)
        shown = dict(h, config={k: v for k, v in cfg.items() if k != "secret"})
        return (201, shown, None)

    def _create_comment(self, m, query, body):
        owner, repo, n = m.group(1), m.group(2), int(m.group(3))
        try:
            req = json.loads(body or "{}")
        except ValueError:
            return (400, {"message": "Problems parsing JSON", "documentation_url": DOCS}, None)
        if not isinstance(req.get("body"), str) or not req["body"]:
            return (422, {"message": "Validation Failed", "documentation_url": DOCS,
                          "errors": [{"resource": "IssueComment", "field": "body",
                                      "code": "missing_field"}]}, None)
        with LOCK:
            if not any(p["number"] == n for p in STATE["pulls"].get(owner + "/" + repo, [])):
                return (404, {"message": "Not Found", "documentation_url": DOCS}, None)
            cid = len(STATE["comments"]) + 1
            c = {"id": cid, "body": req["body"],
                 "html_url": "%s/%s/%s/pull/%d#issuecomment-%d"
                 % (STATE["web_url"].rstrip("/"), owner, repo, n, cid)}
            STATE["comments"].append(dict(c, repo=owner + "/" + repo, number=n))
        return (201, c, None)

    # -- control ------------------------------------------------------------------
    def _control(self, method, path, body):
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            return self._send(400, {"error": "bad json"})
        with LOCK:
            if path == "/_control/health":
                return self._send(200, {"ok": True})
            if path == "/_control/requests":
                return self._send(200, STATE["requests"])
            if path == "/_control/pulls":
                return self._send(200, [pull_json(p) for ps in STATE["pulls"].values() for p in ps])
            if path == "/_control/hooks":
                return self._send(200, [dict(h, repo=k) for k, hs in STATE["hooks"].items()
                                        for h in hs])
            if path == "/_control/pull" and method == "POST":
                key = req["repo"]
                n = int(req["number"])
                pulls = STATE["pulls"].setdefault(key, [])
                p = next((x for x in pulls if x["number"] == n), None)
                if p is None:
                    web = STATE["web_url"].rstrip("/")
                    p = {"id": 100000 + len(pulls) + n, "number": n, "state": "open",
                         "title": "PR %d" % n, "body": None, "draft": False,
                         "html_url": req.get("html_url") or "%s/%s/pull/%d" % (web, key, n),
                         "head": {"ref": "b%d" % n, "label": "%s:b%d" % (key.split("/")[0], n)},
                         "base": {"ref": "main", "label": "%s:main" % key.split("/")[0]},
                         "user": {"login": "relyloop-bot"},
                         "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "closed_at": None, "merged_at": None, "_merged": False}
                    pulls.append(p)
                    STATE["next_number"][key] = max(STATE["next_number"].get(key, 1), n + 1)
                for k in ("state", "merged_at"):
                    if k in req:
                        p[k] = req[k]
                if "merged" in req:
                    p["_merged"] = bool(req["merged"])
                if p["state"] == "closed" and not p.get("closed_at"):
                    p["closed_at"] = p.get("merged_at") or time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                if p["state"] == "open":
                    p["closed_at"] = None
                p["updated_at"] = next_updated_at()
                return self._send(200, pull_json(p))
            if path == "/_control/comments":
                return self._send(200, STATE["comments"])
            if path == "/_control/script" and method == "POST":
                STATE["scripts"].setdefault(req["route"], []).extend(req.get("responses", []))
                return self._send(200, {"ok": True})
            if path == "/_control/reset" and method == "POST":
                everything = not req
                if everything or req.get("requests"):
                    STATE["requests"] = []
                if everything or req.get("script"):
                    STATE["scripts"] = {}
                if everything or req.get("pulls"):
                    STATE["pulls"] = {}
                    STATE["next_number"] = {}
                    STATE["comments"] = []
                    STATE["hooks"] = {}
                return self._send(200, {"ok": True})
            if path == "/_control/config" and method == "POST":
                for k in ("token", "git_root", "web_url"):
                    if k in req:
                        STATE[k] = req[k]
                for key, n in (req.get("next_number") or {}).items():
                    STATE["next_number"][key] = int(n)
                return self._send(200, {"ok": True})
        return self._send(404, {"error": "unknown control endpoint"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--token", default=os.environ.get("FAKE_GITHUB_TOKEN", ""))
    ap.add_argument("--token-file")
    ap.add_argument("--web-url", default="https://github.com")
    ap.add_argument("--git-root")
    ap.add_argument("--api-prefix", default="")
    a = ap.parse_args()
    STATE["token"] = a.token
    if a.token_file:
        with open(a.token_file) as f:
            STATE["token"] = f.read().strip()
    STATE["web_url"] = a.web_url
    STATE["git_root"] = a.git_root
    STATE["api_prefix"] = a.api_prefix.rstrip("/")
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(srv.server_address[1]))
        os.rename(tmp, a.port_file)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
