import threading

from sofeed.store import Store
from webapp import db
from webapp.recent import RecentQuestions


def test_every_request_and_thread_shares_one_store_and_one_cache(app):
    seen = []

    def use():
        with app.app_context():
            seen.append((db.get_store(), db.get_recent()))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stores, caches = {id(store) for store, _ in seen}, {id(cache) for _, cache in seen}
    assert len(seen) == 8
    assert len(stores) == len(caches) == 1
    store, cache = seen[0]
    assert isinstance(store, Store)
    assert isinstance(cache, RecentQuestions)
    assert cache.store is store


def test_the_store_uses_the_apps_database_and_timeout(app, database_name):
    with app.app_context():
        store = db.get_store()
    assert store.db.name == database_name
    assert store.client.options.server_selection_timeout == app.config["MONGO_TIMEOUT_MS"] / 1000
    assert store.client.options.pool_options.connect_timeout == app.config["MONGO_TIMEOUT_MS"] / 1000


def test_the_cache_refreshes_as_often_as_configured(app):
    app.config["REFRESH_SECONDS"] = 0.125
    with app.app_context():
        assert db.get_recent().refresh_seconds == 0.125


def test_closing_drops_the_store_and_a_later_request_opens_a_new_one(app):
    with app.app_context():
        first = db.get_store()
    db.close(app)
    assert app.extensions[db.EXTENSION]._store is None
    with app.app_context():
        second = db.get_store()
    assert second is not first
    assert second.ping() is None
