"""Fan-out: /update under many polling clients, against the production server config.

The web app runs under gunicorn with webapp/gunicorn_conf.py, on a store of
1,000 questions saved by Store.save_question. wrk keeps 50, 200 and then
1,000 connections busy asking `/update?timestamp=<newest fetched>`, the
common case of nothing new, for 10 s each; every answer must be `[]`.
Meanwhile FerretDB's serverStatus counts the queries the app sends (every
command except handshakes and heartbeats): the app's per-process cache
should keep them flat however many clients poll.

wrk runs flat out (a closed loop: each connection sends its next request
as soon as it has an answer), so the server is saturated and the latency
is mostly queueing: by Little's law, mean latency = connections / rate,
which at 200 connections is under 50 ms only above 4,000 requests/s.

Anchor: bench/trivial_app.py, a Flask view returning a constant JSON array,
under the same gunicorn settings (the same config file, its app overridden
on the command line), running beside it: the two take turns at each
connection count.
Goals: at least 0.5x the trivial view's requests/s; p99 ≤ 50 ms at 200
connections; database queries per second that do not grow with clients
(at 1,000 connections at most 1.25x those at 50, plus 1 query/s of noise).
"""

import contextlib
import sys
import uuid

import common

from bench import loadgen, store_data
from bench.services import connect, database_commands, newest_fetched, private_database, web_app
from sofeed.store import Store

# (questions, connection counts, seconds per wrk run, warm-up seconds)
FULL = (1000, (50, 200, 1000), 10, 2)
QUICK = (100, (50, 200, 1000), 2, 0)
LATENCY_CONNECTIONS = 200
TRIVIAL_APP = "bench.trivial_app:create_app()"


@contextlib.contextmanager
def app_and_anchor(work, mongo_uri, database, name="", **options):
    """The web app and the trivial view under the same gunicorn settings (options), booted side by side."""
    with (
        web_app(work / f"gunicorn-webapp{name}.log", mongo_uri, database, **options) as app,
        web_app(work / f"gunicorn-trivial{name}.log", app=TRIVIAL_APP, **options) as trivial,
    ):
        app.wait_ready()
        trivial.wait_ready()
        yield app, trivial


def add_rate(result, name, load, anchor_load, anchor, goal, least_share=None, failures="errors"):
    """A figure: load's requests/s beside the trivial view's (anchor_load) under the same settings.

    Its goal is met with none of the Load's failures (all its errors, or non_2xx), and at least
    least_share of the anchor's rate if given.
    """
    share = common.ratio(load.requests_per_second, anchor_load.requests_per_second)
    met = getattr(load, failures) == 0 and (least_share is None or share >= least_share)
    result.add(
        name,
        load.requests_per_second,
        "req/s",
        anchor,
        anchor_load.requests_per_second,
        share,
        "x the trivial view's rate",
        goal,
        met,
    )


def run(quick):
    questions, connection_counts, seconds, warm_up = QUICK if quick else FULL
    work = common.work_dir("fanout")
    database = f"bench_fanout_{uuid.uuid4().hex[:8]}"
    with private_database(work / "ferretdb") as (mongo_uri, _process), open(work / "wrk.log", "w") as log:
        store = Store.connect(mongo_uri, database)
        store_data.fill(store, questions)
        store.close()
        with connect(mongo_uri) as client, app_and_anchor(work, mongo_uri, database) as (app, trivial):
            url = f"{app.url}/update?timestamp={newest_fetched(app, questions)}"
            if app.get(url.removeprefix(app.url)) != (200, []):
                raise AssertionError(f"{url} does not answer []")
            anchor_url = trivial.url + "/update"
            if warm_up:
                loadgen.load(url, connection_counts[0], warm_up, log)
                loadgen.load(anchor_url, connection_counts[0], warm_up, log)
            # The app and its anchor take turns, so that a busy spell of the machine slows both alike.
            webapp, anchor = {}, {}
            for connections in connection_counts:
                before = database_commands(client)
                load = loadgen.load(url, connections, seconds, log)
                webapp[connections] = (load, (database_commands(client) - before) / load.seconds)
                anchor[connections] = loadgen.load(anchor_url, connections, seconds, log)

    result = common.Result(
        "fanout",
        "4. Fan-out",
        f"wrk, 2 threads, {seconds} s per run, `/update?timestamp=<newest>` (nothing new) on "
        f"{questions:,} stored questions; gunicorn -c webapp/gunicorn_conf.py",
    )
    for connections in connection_counts:
        add_rate(
            result,
            f"requests/s at {connections:,} connections",
            webapp[connections][0],
            anchor[connections],
            "trivial Flask view, same gunicorn settings",
            "≥ 0.5x, no errors",
            least_share=0.5,
        )
    for connections in connection_counts:
        load, anchor_load = webapp[connections][0], anchor[connections]
        goal = connections == LATENCY_CONNECTIONS
        result.add(
            f"p99 latency at {connections:,} connections, flat out",
            load.p99_ms,
            "ms",
            "trivial Flask view, same gunicorn settings",
            anchor_load.p99_ms,
            common.ratio(load.p99_ms, anchor_load.p99_ms),
            "x the trivial view's p99",
            "≤ 50 ms" if goal else "none (context)",
            load.p99_ms <= 50 if goal else None,
        )
    fewest, most = connection_counts[0], connection_counts[-1]
    queries_fewest, queries_most = webapp[fewest][1], webapp[most][1]
    result.add(
        f"database queries/s at {most:,} connections",
        queries_most,
        "queries/s",
        f"the same at {fewest} connections",
        queries_fewest,
        common.ratio(queries_most, queries_fewest),
        f"x the queries at {fewest} connections",
        "≤ 1.25x (+1/s): flat",
        queries_most <= 1.25 * queries_fewest + 1,
    )
    result.note(
        "database queries/s",
        ", ".join(f"{webapp[count][1]:.1f} at {count:,} connections" for count in connection_counts),
    )
    loads = {"/update": {count: load for count, (load, _queries) in webapp.items()}, "trivial view": anchor}
    for name, runs in loads.items():
        result.note(
            f"latency p50 / p99 / max, {name}",
            "; ".join(
                f"{count:,}: {load.p50_ms:.1f} / {load.p99_ms:.1f} / {load.max_ms:.0f} ms"
                + (f", {load.errors} errors" if load.errors else "")
                for count, load in runs.items()
            ),
        )
    return result


if __name__ == "__main__":
    sys.exit(common.main(run))
