import subprocess
import sys

import pytest

from tests.helpers import ROOT
from webapp import DEFAULTS, create_app


@pytest.fixture
def clean_environment(monkeypatch):
    for name in ("MONGO_URI", "MONGO_DATABASE", "SOFEED_POLL_SECONDS", "SOFEED_REFRESH_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_defaults_match_the_crawl_and_answer_within_two_seconds(clean_environment):
    config = create_app().config
    assert config["MONGO_URI"] == "mongodb://127.0.0.1:27017"
    assert config["MONGO_DATABASE"] == "stack_questions"
    assert config["POLL_SECONDS"] == 5
    assert config["REFRESH_SECONDS"] == 0.25
    assert config["MONGO_TIMEOUT_MS"] < 2000


def test_the_environment_overrides_the_defaults(clean_environment):
    clean_environment.setenv("MONGO_URI", "mongodb://db.example:27017")
    clean_environment.setenv("MONGO_DATABASE", "mirror")
    clean_environment.setenv("SOFEED_POLL_SECONDS", "2.5")
    config = create_app().config
    assert (config["MONGO_URI"], config["MONGO_DATABASE"]) == ("mongodb://db.example:27017", "mirror")
    assert config["POLL_SECONDS"] == 2.5


def test_the_test_config_overrides_the_environment(clean_environment):
    clean_environment.setenv("SOFEED_POLL_SECONDS", "2.5")
    clean_environment.setenv("MONGO_DATABASE", "mirror")
    config = create_app({"POLL_SECONDS": 1, "MONGO_DATABASE": "scratch"}).config
    assert (config["POLL_SECONDS"], config["MONGO_DATABASE"]) == (1, "scratch")


@pytest.mark.parametrize("poll", [0, -1])
def test_a_poll_interval_that_is_not_positive_is_refused(clean_environment, poll):
    with pytest.raises(ValueError, match="POLL_SECONDS must be a positive number"):
        create_app({"POLL_SECONDS": poll})


def test_creating_the_app_opens_no_database_connection(clean_environment):
    app = create_app({"MONGO_URI": "mongodb://127.0.0.1:1"})
    assert app.extensions["sofeed.db"]._store is None
    assert set(DEFAULTS) <= set(app.config)


def test_the_flask_command_finds_the_app_and_its_routes():
    routes = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "webapp", "routes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    for rule in ("/update", "/status", "/healthz", "/static/<path:filename>"):
        assert rule in routes
