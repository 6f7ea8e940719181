"""Versioned static URLs: url_for('static', ...) carries ?v=<hash of the file>.

A proxy (deploy/nginx/sofeed.conf) can then let browsers cache /static/
forever: a changed file gets a new URL, so a page never runs a new template
with an old script.
"""

import hashlib
from pathlib import Path


def init_app(app):
    versions = {}

    def version(filename):
        if filename not in versions:
            path = Path(app.static_folder) / filename
            versions[filename] = (
                hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else None
            )
        return versions[filename]

    @app.url_defaults
    def add_version(endpoint, values):
        if endpoint == "static" and "v" not in values:
            found = version(values.get("filename", ""))
            if found:
                values["v"] = found
