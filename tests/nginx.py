"""Debian's nginx running deploy/nginx/sofeed.conf, for the tests: free port, own prefix, pid and logs.

The site file is used as shipped, with only its listen port, its upstream
servers and its static folder replaced; a small main config around it keeps
every file nginx writes in a folder of the test's own, so it runs as any user.
"""

import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.helpers import ROOT
from tests.processes import http
from tools import launcher

NGINX = "/usr/sbin/nginx"
SITE = ROOT / "deploy" / "nginx" / "sofeed.conf"
STATIC = ROOT / "webapp" / "static"

MAIN = """\
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 2048; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/temp/body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    include {prefix}/sofeed.conf;
}}
"""


# The upstream's one shipped server line; the test repeats it, parameters and all, per gunicorn.
_SERVER_LINE = re.compile(r"^(?P<indent>[ \t]*)server 127\.0\.0\.1:8000(?P<parameters>[^;]*);$", re.MULTILINE)


def render_site(port, upstreams, static=STATIC):
    """The shipped site file with this run's port, gunicorn addresses and static folder."""
    text = SITE.read_text()
    for token in ("listen 80;", "/opt/sofeed/webapp/static/"):
        if text.count(token) != 1:
            raise AssertionError(f"{SITE} must contain {token!r} exactly once: the test replaces it")
    lines = _SERVER_LINE.findall(text)
    if len(lines) != 1:
        raise AssertionError(f"{SITE} must have one line 'server 127.0.0.1:8000 ...;': the test replaces it")
    [(indent, parameters)] = lines
    servers = "\n".join(f"{indent}server {address}{parameters};" for address in upstreams)
    text = _SERVER_LINE.sub(lambda _: servers, text)
    text = text.replace("listen 80;", f"listen 127.0.0.1:{port};")
    return text.replace("/opt/sofeed/webapp/static/", f"{static}/")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Nginx:
    """nginx in the foreground in front of the given gunicorn addresses ("127.0.0.1:PORT")."""

    def __init__(self, upstreams):
        # Not under pytest's private tmp folder: nginx's workers run as nobody when started by root.
        self.prefix = Path(tempfile.mkdtemp(prefix="sofeed-nginx-"))
        self.prefix.chmod(0o755)
        (self.prefix / "temp").mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A copy of the static files, as an install has them: nginx's workers may not read a checkout
        # in a private folder (a clone in a mktemp -d, as CI makes one, is 0700).
        static = shutil.copytree(STATIC, self.prefix / "static")
        for path in [static, *static.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (self.prefix / "sofeed.conf").write_text(render_site(self.port, upstreams, static))
        (self.prefix / "nginx.conf").write_text(MAIN.format(prefix=self.prefix))
        command = [NGINX, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"), "-e", "stderr"]
        checked = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx rejects {SITE}: {checked.stderr}")
        with open(self.prefix / "nginx.out", "w") as log:
            self.part = launcher.start(
                "nginx", command, ready=self._answers, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    def _answers(self, _part=None):
        try:
            status, _ = http(self.url + "/static/favicon.svg", timeout=2)
        except OSError:
            return False
        return status == 200

    def errors(self):
        return (self.prefix / "error.log").read_text() if (self.prefix / "error.log").exists() else ""

    def stop(self):
        self.part.stop()  # SIGTERM: nginx's fast shutdown
        shutil.rmtree(self.prefix, ignore_errors=True)
