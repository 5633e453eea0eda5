"""The minipaas example app: one program, four processes, Python's standard library only.

    python3 app.py web       HTTP on :8000 (/, /healthz, /secret-digest, /visits)
    python3 app.py worker    a heartbeat row every 2 s, forever
    python3 app.py migrate   wait for PostgreSQL, create the database and tables, exit
    python3 app.py cleanup   delete heartbeats older than an hour, exit (the cron task)

PostgreSQL is reached with `psql`: DATABASE_URL names host, user and database (no password); the
password is read from the file POSTGRES_PASSWORD_FILE (a secret) at every connection, so a
rotated secret is picked up without a restart. It travels to psql in its environment only.
"""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@postgres:5432/app")
PASSWORD_FILE = os.environ.get("POSTGRES_PASSWORD_FILE", "/run/secrets/postgres_password")
APP_SECRET_FILE = os.environ.get("APP_SECRET_FILE", "/run/secrets/app_secret")
PORT = int(os.environ.get("PORT", "8000"))
MIGRATE_TIMEOUT = 120
# How long the web process keeps answering after SIGTERM (below Swarm's 10 s grace period).
DRAIN_SECONDS = float(os.environ.get("DRAIN_SECONDS", "3"))
DRAINING = threading.Event()

SCHEMA = """
CREATE TABLE IF NOT EXISTS visits (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS heartbeats (
    id bigserial PRIMARY KEY,
    node text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS heartbeats_at ON heartbeats (at);
"""


def log(message):
    print(message, flush=True)


def version():
    return os.environ.get("MINIPAAS_DEPLOY_VERSION", "unknown")


def node_name():
    """The Swarm node's name when Swarm filled in NODE_HOSTNAME, else the container's hostname."""
    name = os.environ.get("NODE_HOSTNAME", "")
    if not name or "{{" in name:
        name = socket.gethostname()
    return name


def maintenance_url():
    """DATABASE_URL with the database `postgres`, which always exists."""
    parts = urllib.parse.urlsplit(DATABASE_URL)
    return urllib.parse.urlunsplit(parts._replace(path="/postgres"))


def database_name():
    return urllib.parse.urlsplit(DATABASE_URL).path.lstrip("/") or "postgres"


def psql(sql, url=None, variables=None, timeout=15):
    """Runs `sql` (from stdin, so psql variables work) and returns (ok, output, error)."""
    env = dict(os.environ, PGCONNECT_TIMEOUT="3")
    try:
        with open(PASSWORD_FILE, encoding="utf-8") as f:
            env["PGPASSWORD"] = f.read().strip()
    except OSError:
        pass
    cmd = ["psql", url or DATABASE_URL, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"]
    for name, value in (variables or {}).items():
        cmd += ["-v", f"{name}={value}"]
    try:
        done = subprocess.run(
            cmd, input=sql, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, "", f"psql gave no answer within {timeout} s"
    return done.returncode == 0, done.stdout.strip(), done.stderr.strip()


class Handler(BaseHTTPRequestHandler):
    server_version = "minipaas-example"

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/":
            # Best effort: the page answers even when the database does not.
            ok, _, err = psql("INSERT INTO visits DEFAULT VALUES;", timeout=5)
            if not ok:
                log(f"web: visit not recorded: {err}")
            self.answer(200, f"hello from minipaas example (version {version()})\n")
        elif path == "/healthz":
            # APP_UNHEALTHY=1 makes an image whose healthcheck never passes (the rollback test).
            if os.environ.get("APP_UNHEALTHY") == "1" or DRAINING.is_set():
                self.answer(503, "unhealthy\n")
            else:
                self.answer(200, "ok")
        elif path == "/secret-digest":
            try:
                with open(APP_SECRET_FILE, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()[:12]
            except OSError:
                self.answer(404, f"no secret at {APP_SECRET_FILE}\n")
                return
            self.answer(200, digest + "\n")
        elif path == "/visits":
            ok, out, err = psql("SELECT count(*) FROM visits;", timeout=5)
            if ok:
                self.answer(200, out + "\n")
            else:
                log(f"web: cannot count visits: {err}")
                self.answer(503, "database unavailable\n")
        else:
            self.answer(404, "not found\n")

    def answer(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        # Health probes every few seconds would drown the log.
        if not self.path.startswith("/healthz"):
            sys.stderr.write("web: %s %s\n" % (self.address_string(), format % args))


def web():
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)

    def drain(*_):
        # Swarm takes the task out of DNS before it sends SIGTERM, but Caddy may still pick it
        # from the list it resolved up to a second ago: keep answering a while, then stop.
        if DRAINING.is_set():
            return
        DRAINING.set()
        log(f"web: SIGTERM, draining for {DRAIN_SECONDS} s")
        threading.Timer(DRAIN_SECONDS, server.shutdown).start()

    signal.signal(signal.SIGTERM, drain)
    log(f"web: listening on :{PORT} (version {version()})")
    server.serve_forever()
    log("web: stopped")


def worker():
    node = node_name()
    log(f"worker: started on {node}")
    while True:
        ok, _, err = psql(
            "INSERT INTO heartbeats (node) VALUES (:'node');", variables={"node": node}
        )
        if ok:
            log(f"worker: heartbeat from {node}")
        else:
            log(f"worker: database unavailable, retrying: {err}")
        time.sleep(2)


def migrate():
    deadline = time.monotonic() + MIGRATE_TIMEOUT
    while True:
        ok, _, err = psql("SELECT 1;", url=maintenance_url())
        if ok:
            break
        if time.monotonic() > deadline:
            log(f"migrate: postgres did not answer within {MIGRATE_TIMEOUT} s: {err}")
            return 1
        log(f"migrate: waiting for postgres: {err}")
        time.sleep(2)
    db = database_name()
    ok, exists, err = psql(
        "SELECT 1 FROM pg_database WHERE datname = :'db';",
        url=maintenance_url(),
        variables={"db": db},
    )
    if ok and not exists:
        ok, _, err = psql('CREATE DATABASE :"db";', url=maintenance_url(), variables={"db": db})
        # Another migrate may have created it a moment ago.
        ok = ok or "already exists" in err
    if not ok:
        log(f"migrate: cannot create database {db}: {err}")
        return 1
    ok, _, err = psql(SCHEMA)
    if not ok:
        log(f"migrate: {err}")
        return 1
    log("migrated")
    return 0


def cleanup():
    ok, out, err = psql(
        "WITH gone AS (DELETE FROM heartbeats WHERE at < now() - interval '1 hour' RETURNING 1)"
        " SELECT count(*) FROM gone;"
    )
    if not ok:
        log(f"cleanup: {err}")
        return 1
    log(f"cleanup: deleted {out} heartbeats older than 1 hour")
    return 0


def main():
    # As PID 1 in a container, Python would ignore SIGTERM and `docker stop` would wait 10 s.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    commands = {"web": web, "worker": worker, "migrate": migrate, "cleanup": cleanup}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        print(f"usage: app.py {'|'.join(commands)}", file=sys.stderr)
        return 2
    return commands[sys.argv[1]]() or 0


if __name__ == "__main__":
    sys.exit(main())
