"""The live page of sofeed: new Stack Overflow questions appear without a reload.

    flask --app webapp run                                      # development
    gunicorn -c webapp/gunicorn_conf.py 'webapp:create_app()'   # production

Configuration, later ones winning: the defaults below; MONGO_URI and
MONGO_DATABASE from the environment (the names the crawl reads); any
SOFEED_NAME from the environment as NAME (SOFEED_POLL_SECONDS=2); the dict
passed to create_app. The app only reads: it never starts a crawl or a
scheduler, which would start one per gunicorn worker.
"""

import os

from flask import Flask

DEFAULTS = {
    "MONGO_URI": "mongodb://127.0.0.1:27017",
    "MONGO_DATABASE": "stack_questions",
    # Fail each try of a database call after this long (a refresh is given up after that).
    "MONGO_TIMEOUT_MS": 1500,
    # How often the page polls /update when it cannot hold a stream of /events.
    "POLL_SECONDS": 5.0,
    # Live /events streams per process, beyond which pages poll (webapp/gunicorn_conf.py
    # sets it for its worker class), and how long one lasts before the browser reconnects.
    "STREAMS_PER_PROCESS": 8,
    "STREAM_SECONDS": 300.0,
    # How often, at most, a process re-reads the database for all its clients.
    "REFRESH_SECONDS": 0.25,
    # How often the question count and the crawl status are re-read.
    "STATUS_SECONDS": 3.0,
}


def create_app(config=None):
    """Build the app: defaults, then the environment, then config."""
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    for name in ("MONGO_URI", "MONGO_DATABASE"):
        if os.environ.get(name):
            app.config[name] = os.environ[name]
    app.config.from_prefixed_env("SOFEED")
    if config:
        app.config.from_mapping(config)
    poll = app.config["POLL_SECONDS"]
    if not float(poll) > 0:
        raise ValueError(f"POLL_SECONDS must be a positive number of seconds, like 5; not {poll!r}")

    from webapp import assets, atom_feed, db, errors, health, metrics, questions, stream

    assets.init_app(app)
    db.init_app(app)
    errors.init_app(app)
    app.register_blueprint(questions.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(atom_feed.bp)
    stream.init_app(app)
    metrics.init_app(app)
    return app
