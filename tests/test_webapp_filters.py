import pytest
from werkzeug.datastructures import MultiDict

from tests.helpers import save_numbered
from webapp.filters import FilterError, QuestionFilter


def ask(query):
    return QuestionFilter.from_args(MultiDict(query))


def question(tags=(), title="", summary=""):
    return {"tags": list(tags), "title": title, "summary_text": summary}


def test_tags_match_any_of_them_case_insensitively():
    wanted = ask({"tags": "Python, flask"})
    assert wanted.tags == ("python", "flask")
    assert wanted.matches(question(["FLASK"]))
    assert wanted.matches(question(["python", "django"]))
    assert not wanted.matches(question(["django"]))


def test_words_must_all_be_in_the_title_or_the_summary():
    wanted = ask({"q": "Async  AWAIT"})
    assert wanted.matches(question(title="async in Python", summary="how does await work"))
    assert not wanted.matches(question(title="async in Python"))


def test_tags_and_words_combine_and_an_empty_filter_matches_everything():
    wanted = ask({"tags": "python", "q": "await"})
    assert wanted.matches(question(["python"], "await it"))
    assert not wanted.matches(question(["rust"], "await it"))
    assert QuestionFilter().matches(question())
    assert not QuestionFilter()
    assert ask({"tags": " , ", "q": " "}) == QuestionFilter()


def test_a_filter_is_hashable_and_renders_back_to_its_query_string():
    wanted = ask({"tags": "python,flask,python", "q": "async await"})
    assert hash(wanted) == hash(ask({"tags": "PYTHON,Flask", "q": "ASYNC await"}))
    assert wanted.query_string() == "tags=python%2Cflask&q=async+await"
    assert ask(MultiDict(wanted.args())) == wanted
    assert wanted.with_tag("Rust").tags == ("python", "flask", "rust")
    assert wanted.without_tag("python").tags == ("flask",)


@pytest.mark.parametrize(
    ("query", "fix"),
    [
        ({"tags": ",".join(f"t{n}" for n in range(21))}, "at most 20 tags"),
        ({"tags": "x" * 36}, "longer than 35 characters"),
        ({"q": "w" * 201}, "longer than 200 characters"),
        ({"q": "tab\there"}, "printable text only"),
        ({"tags": "py\x00thon"}, "printable text only"),
        ({"q": "del\x7f"}, "printable text only"),
        ([("tags", "a"), ("tags", "b")], "separate several tags with commas"),
        ([("q", "a"), ("q", "b")], "separate several words with spaces"),
    ],
)
def test_bad_filter_input_is_refused_with_a_message_that_names_the_fix(query, fix):
    with pytest.raises(FilterError, match=fix):
        ask(query)


def test_exactly_20_tags_of_35_characters_and_a_200_character_q_are_accepted():
    wanted = ask({"tags": ",".join(f"{n:02}" + "x" * 33 for n in range(20)), "q": "w" * 200})
    assert len(wanted.tags) == 20


def save_tagged(store):
    """Questions 0-5: the even ones tagged python, the odd ones rust; 4 also says 'await'."""
    return [
        save_numbered(
            store, n, tags=["python" if n % 2 == 0 else "rust"], summary_text="await" if n == 4 else "x"
        )
        for n in range(6)
    ]


def test_update_hands_out_only_matching_questions_after_the_cursor(client, earlier_store):
    docs = save_tagged(earlier_store)
    answer = client.get("/update?timestamp=0&tags=Python").json
    assert [q["id"] for q in answer] == [docs[4]["_id"], docs[2]["_id"], docs[0]["_id"]]
    after = round(docs[2]["fetched"].timestamp(), 3)
    assert [q["id"] for q in client.get(f"/update?timestamp={after}&tags=python").json] == [docs[4]["_id"]]
    assert [q["id"] for q in client.get("/update?tags=python,rust&q=AWAIT").json] == [docs[4]["_id"]]


def test_a_filter_reaches_past_the_200_newest_questions_of_the_snapshot(client, earlier_store):
    old = save_numbered(earlier_store, 0, tags=["cobol"])
    for n in range(1, 206):
        save_numbered(earlier_store, n)
    assert [q["id"] for q in client.get("/update?tags=cobol").json] == [old["_id"]]


@pytest.mark.parametrize("path", ["/update", "/feed.atom"])
def test_bad_filter_input_on_the_api_is_a_400_json_error(client, earlier_store, path):
    response = client.get(path + "?tags=" + ",".join(str(n) for n in range(25)))
    assert response.status_code == 400
    assert response.json == {"error": "25 tags given: filter on at most 20 tags at once"}


def test_the_page_renders_only_matching_questions_with_chips_that_add_their_tag(client, earlier_store):
    docs = save_tagged(earlier_store)
    html = client.get("/?tags=rust").text
    for doc in docs:
        assert (f'data-id="{doc["_id"]}"' in html) == (doc["tags"] == ["rust"])
    assert 'href="/?tags=rust%2Cpython"' not in html  # no python question is shown
    assert 'data-filter="tags=rust"' in html
    assert 'aria-label="Remove the tag rust"' in html
    assert 'href="/"' in html
    assert 'href="/feed.atom?tags=rust"' in html
    unfiltered = client.get("/").text
    assert 'href="/?tags=python"' in unfiltered
    assert 'href="/?tags=rust"' in unfiltered


def test_the_page_with_a_bad_filter_says_why_and_links_to_the_unfiltered_page(client, earlier_store):
    save_tagged(earlier_store)
    response = client.get("/?q=" + "w" * 201)
    assert response.status_code == 400
    assert "q is longer than 200 characters: search for fewer words" in response.text
    assert '<a href="/">Clear the filter</a>' in response.text
    assert 'class="question"' not in response.text
    assert 'data-live="no"' in response.text


def test_the_page_names_each_question_s_site_only_when_there_are_several(client, earlier_store):
    save_numbered(earlier_store, 1)
    assert 'class="site"' not in client.get("/").text
    save_numbered(earlier_store, 2, link="https://superuser.com/questions/2/x")
    html = client.get("/").text
    assert '<span class="site">superuser.com</span>' in html
    assert '<span class="site">stackoverflow.com</span>' in html
