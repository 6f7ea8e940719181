"""Errors as JSON, from one helper, and the headers every response carries.

Every error the app answers (a bad timestamp, an unknown path, a wrong
method, an unreachable database, a bug) is `{"error": "..."}` with its
status, never an HTML page or a traceback. So is the answer gunicorn gives
itself to a request it refuses before the app sees it (a request line over
its limit, bytes that are not HTTP): see raw_error_response.
"""

import json
import logging

from flask import jsonify
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)

SECURITY_HEADERS = {
    # Scripts and styles only from this origin: feed text can never run as script.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


def error_response(status, message, **details):
    """A JSON error: {"error": message, **details} with the given status."""
    response = jsonify({"error": message, **details})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def raw_error_response(status, reason, message):
    """A whole HTTP/1.1 error response as bytes, for a server that answers without the app."""
    body = json.dumps({"error": f"{reason}: {message}" if message else reason}).encode()
    head = [f"HTTP/1.1 {status} {reason}", "Connection: close", "Content-Type: application/json"]
    head += [f"Content-Length: {len(body)}", "Cache-Control: no-store"]
    head += [f"{name}: {value}" for name, value in SECURITY_HEADERS.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def _http_error(error):
    if error.code is None or error.code < 400:  # a routing redirect, not an error
        return error
    response = error_response(error.code, error.description or error.name)
    if error.code == 405:  # keep the Allow header werkzeug computed
        response.headers["Allow"] = error.get_response().headers.get("Allow", "")
    return response


def _unexpected_error(error):
    logger.exception("unexpected error while answering a request", exc_info=error)
    return error_response(500, "internal server error")


def _secure(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_app(app):
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.after_request(_secure)
