"""A simulated Stack Overflow question feed, for `make demo` and the end-to-end tests.

    python tools/feedsim.py --port 8765 --every 5

serves http://127.0.0.1:8765/feeds: an Atom feed shaped like stackoverflow.com's
(Atom as the default namespace, the re:rank extension, categories, an HTML
summary escaped into the XML with entities) holding the newest 30 questions.
A new, realistic question is published every `--every` seconds (0: never).
The feed answers If-None-Match with 304, and /robots.txt allows everything.
The first line on standard output is the feed's URL.

A test publishes a question of its own, at once, with

    POST /publish   {"title": "...", "link": "...", "author": "...", "author_uri": "...",
                     "tags": ["..."], "summary": "<p>HTML</p>"}

(every field optional); the answer is 201 with the question's `question_id`,
`entry_id` and `link`. In-process, FeedSimulator.publish() does the same.
"""

import argparse
import hashlib
import json
import random
import re
import sys
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FEED_SIZE = 30
FIRST_QUESTION_ID = 79_100_000

_XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;", "\n": "&#xA;"}
_XML_SPECIAL = re.compile("[&<>\"'\n]")

# Realistic questions to draw from: a title, its tags, what the asker tried, a line of code.
_QUESTIONS = r"""
How do I merge two dictionaries in a single expression?
python dictionary
I have two dicts and want a new one with the keys of both
z = {**x, **y}

Why is my Dockerfile's COPY step invalidating the cache every build?
docker dockerfile
Every build reinstalls all dependencies even when only the README changed
COPY . /app

Kubernetes ingress returns 404 behind a cloud load balancer
kubernetes kubernetes-ingress
The service answers inside the cluster, but the ingress gives 404 for every path
kubectl get ingress -A

Rust borrow checker rejects a closure that captures &mut self
rust borrow-checker
The closure only reads one field, yet the compiler says self is borrowed mutably twice
self.items.iter().for_each(|i| self.total += i);

Difference between "let" and "var" inside a for loop with setTimeout
javascript scope
With var every callback prints 3, with let it prints 0, 1, 2
for (var i = 0; i < 3; i++) setTimeout(() => console.log(i));

pandas groupby with a custom aggregation drops NaN groups
python pandas
Rows whose key is NaN vanish from the result of groupby().agg()
df.groupby('key').agg(total=('value', 'sum'))

Go: context deadline exceeded when calling gRPC from a goroutine
go grpc
The same call works from main but times out inside the goroutine
ctx, cancel := context.WithTimeout(ctx, time.Second)

CSS grid item overflows its track on narrow screens
css css-grid
A long URL inside a grid item pushes the whole layout off the screen
grid-template-columns: 1fr 3fr;

SQL query to find the second highest salary per department
sql postgresql
I need the second highest salary in each department, ties included
SELECT dept, max(salary) FROM emp GROUP BY dept;

React useEffect runs twice in development mode
reactjs react-hooks
My fetch runs twice on mount and the API is called two times
useEffect(() => { load(); }, []);

git rebase --onto: how do I move a branch to another base?
git git-rebase
My feature branch was cut from the wrong branch and I want it on main
git rebase --onto main old-base feature

TypeScript: type 'string' is not assignable to type 'never'
typescript types
Assigning to an object indexed by a union key fails to compile
obj[key] = value; // key: 'a' | 'b'

Spring Boot @Transactional is ignored on a private method
java spring-boot
The rollback never happens when the exception is thrown
@Transactional private void save(Order o)

C# async method deadlocks when called with .Result
c# async-await
The UI freezes forever as soon as I call the method
var data = LoadAsync().Result;

Segfault in a C program after realloc in a loop
c memory-management
The program crashes on the second iteration, valgrind says invalid read
buf = realloc(buf, n * sizeof *buf);

std::vector iterator invalidated after push_back
c++ stdvector
Dereferencing the iterator after push_back gives garbage
auto it = v.begin(); v.push_back(4);

Flask app factory: working outside of application context
python flask
Calling db.get() from a background thread raises RuntimeError
with app.app_context(): job()

Django migration fails with 'relation already exists'
django django-migrations
The table was created by hand earlier and now migrate refuses to run
python manage.py migrate --fake-initial

How to read a large CSV file in chunks with Python?
python csv
The file is 20 GB and reading it at once runs out of memory
for chunk in pd.read_csv(path, chunksize=100_000):

Bash: loop over files with spaces in their names
bash shell
The loop splits every file name at the spaces
for f in $(ls *.txt); do echo "$f"; done

Regex to match an email address but not trailing dots
regex validation
My pattern accepts addresses that end with a dot
^[\w.+-]+@[\w-]+\.[\w.]+$

Node.js: Cannot use import statement outside a module
node.js es6-modules
Running the file with node gives a SyntaxError at the first import
import fs from 'fs';

Kotlin coroutine scope cancelled when the activity is recreated
kotlin kotlin-coroutines
Rotating the phone cancels the download halfway
lifecycleScope.launch { download() }

Swift: Publishing changes from background threads is not allowed
swift swiftui
Xcode prints a purple warning when the network call finishes
URLSession.shared.dataTask(with: url) { d, _, _ in self.items = decode(d) }

Terraform plan wants to replace the resource on every run
terraform amazon-web-services
Nothing changed, yet every plan shows the instance as forces replacement
user_data = file("init.sh")

PostgreSQL: index not used for a LIKE query with a prefix
postgresql indexing
EXPLAIN shows a sequential scan for name LIKE 'abc%'
CREATE INDEX ON users (name);

numpy broadcasting error: operands could not be broadcast together
python numpy
Adding a column vector to a matrix raises ValueError
a + b  # shapes (3, 4) and (3,)

Angular: ExpressionChangedAfterItHasBeenCheckedError after a route change
angular typescript
The error appears only when navigating back to the page
this.loading = false;

Nginx returns 502 Bad Gateway with gunicorn behind it
nginx gunicorn
The app works on port 8000 directly but nginx answers 502
proxy_pass http://127.0.0.1:8000;

MongoDB aggregation: $lookup returns an empty array
mongodb aggregation-framework
The joined field is always [] although the ids match
{ $lookup: { from: 'users', ... } }

Java stream: collect to a map with duplicate keys
java java-stream
Collectors.toMap throws IllegalStateException: Duplicate key
list.stream().collect(Collectors.toMap(P::name, p -> p))

How do I undo the most recent local commits in Git?
git version-control
I committed the wrong files and have not pushed yet
git reset --soft HEAD~1

Excel formula to look up a value with two criteria
excel excel-formula
VLOOKUP only takes one key and I need to match both name and date
=INDEX(C:C, MATCH(1, (A:A=F1)*(B:B=G1), 0))

Selenium cannot find an element inside an iframe
selenium python
find_element raises NoSuchElementException though the element is visible
driver.find_element(By.ID, 'submit')

Why does 0.1 + 0.2 not equal 0.3 in floating point?
floating-point javascript
My comparison of prices fails for some amounts
0.1 + 0.2 === 0.3 // false

Laravel: SQLSTATE[HY000] [2002] Connection refused in Docker
php laravel
The app container cannot reach MySQL although both are in one compose file
DB_HOST=127.0.0.1

Vue 3 ref inside an object is not reactive
vue.js vuejs3
Changing state.user.name does not update the template
const state = { user: ref({ name: '' }) }

Unity: object passes through the wall at high speed
unity-game-engine c#
The bullet ignores the collider when it is fast
rb.velocity = transform.forward * 200;

Azure Functions timer trigger runs twice every minute
azure-functions azure
The log shows two executions for every scheduled time
[TimerTrigger("0 */1 * * * *")]

Scrapy spider stops after the first page of results
python scrapy
The next-page request is never followed
yield response.follow(next_page, self.parse)
"""
TOPICS = [tuple(block.split("\n")) for block in _QUESTIONS.strip().split("\n\n")]

AUTHORS = """
Mira Okafor
Jonas Lindqvist
Priya Raman
Tomás Herrera
Aiko Tanaka
dev_null_42
Chen Wei
Fatima Zahra
Lukas Novak
Grace Mwangi
Oleksandr K.
Sofia Rossi
bytewrangler
Nguyen Thi Lan
Emeka Obi
Hannah Schmidt
Ravi Patel
Camille Dubois
Mateo García
anon_coder
Ingrid Berg
Yusuf Demir
Zoe O'Brien
kernel_panic
""".strip().split("\n")


# How askers frame their code, before and after it.
SUMMARY_PHRASES = [
    ("I've read the docs and a few answers here, but it doesn't work:", "What am I missing?"),
    ("Here is the smallest example that shows it:", "Is this a bug in {tag} or am I doing it wrong?"),
    ("This is what I have so far:", "Any pointers would be appreciated. I'm fairly new to {tag}."),
    ("It worked last week and now it doesn't. The relevant part:", "Nothing else changed, I think."),
    ("I searched for the error message and found nothing that fits:", "How do I fix this properly?"),
]


def xml_escape(text):
    return _XML_SPECIAL.sub(lambda m: _XML_ESCAPES[m.group()], text)


def html_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slug(title):
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:80] or "question"


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Question:
    question_id: int
    title: str
    tags: list
    author: str
    author_uri: str | None
    rank: int
    published: datetime
    summary_html: str
    link: str

    @property
    def entry_id(self):
        return f"https://stackoverflow.com/q/{self.question_id}"

    def entry_xml(self):
        lines = [
            "    <entry>",
            f"        <id>{xml_escape(self.entry_id)}</id>",
            f'        <re:rank scheme="https://stackoverflow.com">{self.rank}</re:rank>',
            f'        <title type="text">{xml_escape(self.title)}</title>',
            *(
                f'            <category scheme="https://stackoverflow.com/tags" term="{xml_escape(tag)}" />'
                for tag in self.tags
            ),
            "        <author>",
            f"            <name>{xml_escape(self.author)}</name>",
            *([f"            <uri>{xml_escape(self.author_uri)}</uri>"] if self.author_uri else []),
            "        </author>",
            f'        <link rel="alternate" href="{xml_escape(self.link)}" />',
            f"        <published>{iso(self.published)}</published>",
            f"        <updated>{iso(self.published + timedelta(seconds=self.question_id % 50))}</updated>",
            '        <summary type="html">',
            f"            {xml_escape(self.summary_html)}",
            "        </summary>",
            "    </entry>",
        ]
        return "\n".join(lines)


class FeedSimulator:
    """The newest FEED_SIZE questions, as Stack Overflow's /feeds would list them."""

    def __init__(self, seed=None, now=lambda: datetime.now(UTC)):
        self._random = random.Random(seed)
        self._now = now
        self._lock = threading.Lock()
        self._questions = deque(maxlen=FEED_SIZE)  # newest first
        self._next_id = FIRST_QUESTION_ID + self._random.randrange(0, 90_000, 100)
        self._body = b""
        self._etag = ""
        start = self._now() - timedelta(minutes=45)
        for n in range(FEED_SIZE):
            self._add(self._random_fields(), start + timedelta(seconds=90 * n))

    def publish(self, title=None, link=None, author=None, author_uri=None, tags=None, summary=None):
        """Put a new question at the top of the feed; unset fields are made up. Returns it."""
        for name, value in (("title", title), ("link", link), ("author", author), ("summary", summary)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string, not {type(value).__name__}")
        if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            raise TypeError("tags must be a list of strings")
        fields = self._random_fields()
        given = {"title": title, "link": link, "author": author, "tags": tags, "summary_html": summary}
        fields.update({name: value for name, value in given.items() if value is not None})
        if author_uri is not None or author is not None:
            fields["author_uri"] = author_uri
        return self._add(fields, self._now())

    def feed(self):
        """(body, etag) of the current feed."""
        with self._lock:
            return self._body, self._etag

    def _add(self, fields, published):
        with self._lock:
            question_id = self._next_id
            self._next_id += self._random.randint(1, 40)
            link = fields.pop("link", None) or f"https://stackoverflow.com/questions/{question_id}/"
            if link.endswith("/"):
                link += slug(fields["title"])
            question = Question(question_id=question_id, published=published, link=link, **fields)
            self._questions.appendleft(question)
            self._render()
        return question

    def _render(self):
        entries = "\n".join(question.entry_xml() for question in self._questions)
        updated = iso(self._questions[0].published)
        body = FEED_HEAD.format(updated=updated) + entries + "\n</feed>"
        self._body = body.encode("utf-8")
        self._etag = '"' + hashlib.sha1(self._body).hexdigest()[:16] + '"'

    def _random_fields(self):
        title, tags, tried, code = self._random.choice(TOPICS)
        tags = tags.split()
        user = self._random.randint(1_000_000, 23_000_000)
        opening, closing = self._random.choice(SUMMARY_PHRASES)
        summary = (
            f"<p>{html_escape(tried)}. {opening}</p>\n"
            f"<pre><code>{html_escape(code)}\n</code></pre>\n"
            f"<p>{closing.format(tag=html_escape(tags[0]))}</p>\n"
        )
        return {
            "title": title,
            "tags": list(tags),
            "author": self._random.choice(AUTHORS),
            "author_uri": f"https://stackoverflow.com/users/{user}",
            "rank": self._random.choice([0, 0, 0, 0, 1, 1, 2, 3, -1, -2]),
            "summary_html": summary,
        }


FEED_HEAD = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" \
xmlns:creativeCommons="http://backend.userland.com/creativeCommonsRssModule" \
xmlns:re="http://purl.org/atompub/rank/1.0">
    <title type="text">Newest questions - Stack Overflow</title>
    <link rel="self" href="https://stackoverflow.com/feeds" type="application/atom+xml" />
    <link rel="alternate" href="https://stackoverflow.com/questions" type="text/html" />
    <subtitle>most recent 30 from stackoverflow.com</subtitle>
    <updated>{updated}</updated>
    <id>https://stackoverflow.com/feeds</id>
    <creativeCommons:license>https://creativecommons.org/licenses/by-sa/4.0/rdf</creativeCommons:license>
"""


def make_server(simulator, host="127.0.0.1", port=0):
    """A threaded HTTP server for the simulator (not started yet)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "feedsim/1"

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/feeds":
                body, etag = simulator.feed()
                if self.headers.get("If-None-Match") == etag:
                    self._answer(304, b"", None, {"ETag": etag})
                else:
                    self._answer(200, body, "application/atom+xml; charset=utf-8", {"ETag": etag})
            elif path == "/robots.txt":
                self._answer(200, b"User-agent: *\nAllow: /\n", "text/plain")
            else:
                self._answer(404, b"not found\n", "text/plain")

        def do_POST(self):
            if self.path != "/publish":
                self._answer(404, b"not found\n", "text/plain")
                return
            try:
                fields = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                question = simulator.publish(**{name: fields.get(name) for name in PUBLISH_FIELDS})
            except (ValueError, TypeError, AttributeError) as error:
                self._answer(400, json.dumps({"error": str(error)}).encode(), "application/json")
                return
            answer = {
                "question_id": question.question_id,
                "entry_id": question.entry_id,
                "link": question.link,
            }
            self._answer(201, json.dumps(answer).encode(), "application/json")

        def _answer(self, status, body, content_type, headers=None):
            try:
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the crawler gave up on this request

        def log_message(self, format, *args):
            pass

    httpd = ThreadingHTTPServer((host, port), Handler)
    httpd.daemon_threads = True
    return httpd


PUBLISH_FIELDS = ("title", "link", "author", "author_uri", "tags", "summary")


def publish_every(simulator, seconds, stop):
    """Publish a made-up question every `seconds` until stop is set."""
    while not stop.wait(seconds):
        simulator.publish()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (default %(default)s)")
    parser.add_argument(
        "--every", type=float, default=5.0, help="seconds between new questions, 0 for never (default 5)"
    )
    parser.add_argument("--seed", type=int, default=None, help="make the questions reproducible")
    args = parser.parse_args(argv)
    simulator = FeedSimulator(seed=args.seed)
    httpd = make_server(simulator, args.host, args.port)
    host, port = httpd.server_address[:2]
    print(f"http://{host}:{port}/feeds", flush=True)
    stop = threading.Event()
    if args.every > 0:
        threading.Thread(target=publish_every, args=(simulator, args.every, stop), daemon=True).start()
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
