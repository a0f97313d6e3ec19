"""searchMessages: PostgreSQL full-text search over the caller's own messages."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api

SEARCH = """query($q: String!, $first: Int, $s: UUID) {
  searchMessages(query: $q, first: $first, sessionId: $s) {
    rank snippet
    message { id sessionId sequence role content }
    session { id title messageCount }
  }
}"""


async def new_session(api: Api, title: str) -> str:
    data = await api.gql("mutation($t: String) { createSession(input: {title: $t}) { id } }", {"t": title})
    sid: str = data["createSession"]["id"]
    return sid


async def add(api: Api, session_id: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    data = await api.gql(
        """mutation($s: UUID!, $m: [MessageInput!]!) {
             addMessages(sessionId: $s, messages: $m) { id sequence }
           }""",
        {"s": session_id, "m": messages},
    )
    added: list[dict[str, Any]] = data["addMessages"]
    return added


async def search(api: Api, query: str, first: int | None = None, session: str | None = None) -> list[Any]:
    variables: dict[str, Any] = {"q": query, "s": session}
    if first is not None:
        variables["first"] = first
    hits: list[Any] = (await api.gql(SEARCH, variables))["searchMessages"]
    return hits


@pytest.fixture
async def corpus(api: Api, other: Api) -> dict[str, Any]:
    """Two sessions of `api` about foxes and cooking, and one of `other` with a fox too."""
    zoo = await new_session(api, "Zoo")
    zoo_rows = await add(
        api,
        zoo,
        [
            {"role": "USER", "content": "The quick brown fox jumps over the lazy dog"},
            {"role": "ASSISTANT", "content": "Foxes are quick and clever animals; a fox can outrun a dog."},
            {"role": "USER", "content": "<script>alert('fox')</script> & friends"},
        ],
    )
    kitchen = await new_session(api, "Kitchen")
    kitchen_rows = await add(
        api,
        kitchen,
        [
            {"role": "USER", "content": "How do I cook pasta with tomato sauce?"},
            {"role": "ASSISTANT", "content": "Boil the pasta, then add the sauce. A fox would not care."},
        ],
    )
    secret = await new_session(other, "Secret")
    await add(other, secret, [{"role": "USER", "content": "my secret fox password is hunter2"}])
    return {
        "zoo": zoo,
        "kitchen": kitchen,
        "secret": secret,
        "ids": {
            "quick": zoo_rows[0]["id"],
            "foxes": zoo_rows[1]["id"],
            "script": zoo_rows[2]["id"],
            "pasta": kitchen_rows[0]["id"],
            "boil": kitchen_rows[1]["id"],
        },
    }


async def test_ranked_hits_with_snippets(api: Api, corpus: dict[str, Any]) -> None:
    ids = corpus["ids"]
    hits = await search(api, "fox")
    # Markup is not searchable text (PostgreSQL's parser drops tags): the <script> message is no hit.
    assert {h["message"]["id"] for h in hits} == {ids["quick"], ids["foxes"], ids["boil"]}
    ranks = [h["rank"] for h in hits]
    assert ranks == sorted(ranks, reverse=True) and all(r > 0 for r in ranks)
    # Two mentions of fox ("Foxes", "fox") outrank one.
    assert hits[0]["message"]["id"] == ids["foxes"]
    assert hits[0]["rank"] > hits[1]["rank"]
    assert hits[0]["snippet"] == "<b>Foxes</b> are quick and clever animals; a <b>fox</b> can outrun a dog."
    assert hits[0]["message"]["role"] == "ASSISTANT"
    assert hits[0]["session"] == {"id": corpus["zoo"], "title": "Zoo", "messageCount": 3}
    assert hits[0]["message"]["sessionId"] == corpus["zoo"]
    by_id = {h["message"]["id"]: h for h in hits}
    assert by_id[ids["boil"]]["session"]["title"] == "Kitchen"
    assert "<b>fox</b>" in by_id[ids["quick"]]["snippet"]


async def test_snippet_is_escaped_html(api: Api, corpus: dict[str, Any]) -> None:
    hits = await search(api, "friends")
    assert [h["message"]["id"] for h in hits] == [corpus["ids"]["script"]]
    snippet = hits[0]["snippet"]
    assert snippet == "&lt;script&gt;alert('fox')&lt;/script&gt; &amp; <b>friends</b>"
    assert hits[0]["message"]["content"] == "<script>alert('fox')</script> & friends"


async def test_web_search_syntax(api: Api, corpus: dict[str, Any]) -> None:
    ids = corpus["ids"]
    assert [h["message"]["id"] for h in await search(api, '"quick brown"')] == [ids["quick"]]
    assert {h["message"]["id"] for h in await search(api, "fox -dog")} == {ids["boil"]}
    assert {h["message"]["id"] for h in await search(api, "tomato or clever")} == {ids["pasta"], ids["foxes"]}
    # Stemming: "cooking" finds "cook".
    assert [h["message"]["id"] for h in await search(api, "cooking")] == [ids["pasta"]]


@pytest.mark.parametrize(
    "query", ['"unclosed ( OR -', ":*&|!", "fox & | !", "((()))", "'", "-", "the and of", "   ", ""]
)
async def test_bad_syntax_or_blank_is_not_an_error(api: Api, corpus: dict[str, Any], query: str) -> None:
    hits = await search(api, query)
    assert isinstance(hits, list)
    if not query.strip() or query in {":*&|!", "((()))", "'", "-", "the and of"}:
        assert hits == []


async def test_never_another_users_messages(api: Api, other: Api, corpus: dict[str, Any]) -> None:
    assert all("secret" not in h["message"]["content"] for h in await search(api, "fox", first=100))
    assert await search(api, "hunter2") == []
    mine = await search(other, "fox")
    assert [h["session"]["id"] for h in mine] == [corpus["secret"]]
    assert mine[0]["snippet"] == "my secret <b>fox</b> password is hunter2"


async def test_session_filter(api: Api, other: Api, corpus: dict[str, Any]) -> None:
    hits = await search(api, "fox", session=corpus["kitchen"])
    assert [h["message"]["id"] for h in hits] == [corpus["ids"]["boil"]]
    assert await api.code(SEARCH, {"q": "fox", "s": corpus["secret"]}) == "NOT_FOUND"
    assert await other.code(SEARCH, {"q": "fox", "s": corpus["zoo"]}) == "NOT_FOUND"
    assert await api.code(SEARCH, {"q": "fox", "s": "00000000-0000-0000-0000-000000000000"}) == "NOT_FOUND"


async def test_first(api: Api, corpus: dict[str, Any]) -> None:
    assert len(await search(api, "fox", first=2)) == 2
    top = await search(api, "fox", first=1)
    assert [h["message"]["id"] for h in top] == [corpus["ids"]["foxes"]]
    assert await search(api, "fox", first=0) == []
    assert len(await search(api, "fox")) == 3  # default 20
    assert await api.code(SEARCH, {"q": "fox", "first": 101}) == "BAD_USER_INPUT"
    assert await api.code(SEARCH, {"q": "fox", "first": -1}) == "BAD_USER_INPUT"


async def test_query_too_long(api: Api, corpus: dict[str, Any]) -> None:
    assert await api.code(SEARCH, {"q": "fox " * 300}) == "BAD_USER_INPUT"


async def test_deleted_and_cleared_messages_are_not_found(api: Api, corpus: dict[str, Any]) -> None:
    await api.gql("mutation($id: UUID!) { clearSessionHistory(id: $id) { id } }", {"id": corpus["kitchen"]})
    assert {h["session"]["id"] for h in await search(api, "fox")} == {corpus["zoo"]}
    await api.gql("mutation($id: UUID!) { deleteSession(id: $id) }", {"id": corpus["zoo"]})
    assert await search(api, "fox") == []
