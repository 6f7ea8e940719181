import gc
import runpy
from types import SimpleNamespace

import pytest

from tests.helpers import ROOT

CONF = ROOT / "webapp" / "gunicorn_conf.py"
ENVIRONMENT = (
    *("SOFEED_HOST", "SOFEED_PORT", "SOFEED_WORKERS", "SOFEED_THREADS", "SOFEED_ACCESS_LOG"),
    *("SOFEED_WORKER_CLASS", "SOFEED_WORKER_CONNECTIONS", "SOFEED_STREAMS_PER_PROCESS"),
)


def settings(monkeypatch, **environment):
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def streams_per_process(conf):
    [line] = [line for line in conf["raw_env"] if line.startswith("SOFEED_STREAMS_PER_PROCESS=")]
    return int(line.split("=", 1)[1])


def test_gunicorn_listens_on_localhost_8000_by_default(monkeypatch):
    assert settings(monkeypatch)["bind"] == ["127.0.0.1:8000"]


def test_sofeed_host_and_port_choose_where_gunicorn_listens(monkeypatch):
    assert settings(monkeypatch, SOFEED_HOST="0.0.0.0", SOFEED_PORT="9000")["bind"] == ["0.0.0.0:9000"]


def test_gunicorn_serves_the_app_factory_with_gevent_many_streams_and_no_access_log(monkeypatch):
    conf = settings(monkeypatch)
    assert conf["wsgi_app"] == "webapp:create_app()"
    assert conf["worker_class"] == "webapp.worker.GeventWorker"
    assert 1 <= conf["workers"] <= 2
    assert conf["reuse_port"] is True
    assert conf["worker_connections"] >= 5000
    # Streams may never take every connection: some are left for polls and pages.
    assert 1000 <= streams_per_process(conf) < conf["worker_connections"]
    assert conf["accesslog"] is None
    assert conf["timeout"] > 2
    # Longer than the page's poll interval, and what bounds reading one request under gevent.
    assert 5 < conf["keepalive"] <= 30
    assert conf["graceful_timeout"] > 2


def test_sofeed_worker_class_gthread_keeps_the_threaded_settings_and_streams_on_half_the_threads(monkeypatch):
    conf = settings(monkeypatch, SOFEED_WORKER_CLASS="gthread")
    assert conf["worker_class"] == "webapp.worker.ThreadWorker"
    assert conf["threads"] == 16
    assert conf["worker_connections"] == 1000
    assert streams_per_process(conf) == 8


def test_a_stream_limit_set_in_the_environment_is_kept(monkeypatch):
    assert streams_per_process(settings(monkeypatch, SOFEED_STREAMS_PER_PROCESS="0")) == 0


def test_an_unknown_worker_class_is_refused_with_the_choices(monkeypatch):
    with pytest.raises(ValueError, match="set it to gevent \\(the default\\) or gthread"):
        settings(monkeypatch, SOFEED_WORKER_CLASS="eventlet")


def test_a_worker_freezes_what_it_loaded_collects_young_objects_less_often_and_thaws_as_it_exits(monkeypatch):
    conf = settings(monkeypatch)
    before = gc.get_threshold()
    try:
        conf["post_worker_init"](SimpleNamespace(wsgi=object()))  # an app without sofeed's cache: no warm-up
        assert gc.get_threshold() == (50_000, 20, 20)
        assert gc.get_freeze_count() > 0
        # Frozen objects torn down last would run their callbacks after gevent's module is gone.
        conf["worker_exit"](None, None)
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
