import runpy

from tests.helpers import ROOT

CONF = ROOT / "webapp" / "gunicorn_conf.py"


def settings(monkeypatch, **environment):
    for name in ("SOFEED_HOST", "SOFEED_PORT", "SOFEED_WORKERS", "SOFEED_THREADS", "SOFEED_ACCESS_LOG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def test_gunicorn_listens_on_localhost_8000_by_default(monkeypatch):
    assert settings(monkeypatch)["bind"] == ["127.0.0.1:8000"]


def test_sofeed_host_and_port_choose_where_gunicorn_listens(monkeypatch):
    assert settings(monkeypatch, SOFEED_HOST="0.0.0.0", SOFEED_PORT="9000")["bind"] == ["0.0.0.0:9000"]


def test_gunicorn_serves_the_app_factory_with_threads_and_no_access_log(monkeypatch):
    conf = settings(monkeypatch)
    assert conf["wsgi_app"] == "webapp:create_app()"
    assert conf["worker_class"] == "gthread"
    assert 1 <= conf["workers"] <= 2
    assert conf["threads"] >= 8
    assert conf["accesslog"] is None
    assert conf["timeout"] > 2
    assert conf["keepalive"] > 5  # longer than the page's poll interval
