import json

import pytest

from webapp.errors import error_response, raw_error_response

CSP = "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize("path", ["/", "/update", "/status", "/healthz", "/static/app.js", "/no-such-page"])
def test_every_response_carries_the_content_security_policy_and_nosniff(client, path):
    with client.get(path) as response:
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_an_unknown_path_is_a_404_in_json(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.is_json
    assert set(response.json) == {"error"}


def test_a_wrong_method_is_a_405_in_json_that_names_the_allowed_ones(client):
    response = client.post("/update")
    assert response.status_code == 405
    assert response.is_json
    assert "GET" in response.headers["Allow"]


def test_a_bug_is_a_500_in_json_without_a_traceback(app, caplog):
    def broken():
        raise RuntimeError("secret internals")

    app.add_url_rule("/broken", view_func=broken)
    response = app.test_client().get("/broken")
    assert response.status_code == 500
    assert response.json == {"error": "internal server error"}
    assert "secret internals" not in response.text
    assert response.headers["Content-Security-Policy"] == CSP
    [record] = [r for r in caplog.records if r.name == "webapp.errors"]
    assert record.levelname == "ERROR"
    assert "secret internals" in str(record.exc_info[1])


def test_error_response_is_the_json_error_with_its_status(app):
    with app.app_context():
        response = error_response(418, "short and stout", hint="tip me over")
    assert response.status_code == 418
    assert response.json == {"error": "short and stout", "hint": "tip me over"}
    assert response.headers["Cache-Control"] == "no-store"


def test_a_request_gunicorn_refuses_itself_is_answered_in_json_too():
    raw = raw_error_response(414, "Request-URI Too Long", "line too long (5000 > 4094)")
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 414 Request-URI Too Long\r\n")
    assert b"Content-Type: application/json" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert f"Content-Security-Policy: {CSP}".encode() in head.split(b"\r\n")
    assert b"X-Content-Type-Options: nosniff" in head.split(b"\r\n")
    assert json.loads(body) == {"error": "Request-URI Too Long: line too long (5000 > 4094)"}
