"""The fan-out anchor: a Flask app whose /update returns a constant JSON array.

    gunicorn -c webapp/gunicorn_conf.py 'bench.trivial_app:create_app()'

No database, no cache, no parsing: what Flask under the same gunicorn
settings costs for the least a JSON view can do.
"""

from flask import Flask, jsonify


def create_app():
    app = Flask(__name__)

    @app.get("/update")
    def update():
        """Always the same answer: nothing new."""
        return jsonify([])

    return app
