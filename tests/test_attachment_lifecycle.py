"""Attachments over time: forks share them, deleting sessions and users deletes them, retention sweeps orphans."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from services import retention, users
from tests.attachment_turns import (
    CLEAR,
    DELETE,
    FORK,
    SEND,
    VIEW,
    agent_for,
    new_session,
    prompt_items,
    send,
)
from tests.conftest import Api
from tests.scripted import Recorder
from tests.uploads import png, upload


async def test_a_fork_shares_attachments_and_deleting_sessions_deletes_only_theirs(
    api: Api, admin: Api, sql: Any
) -> None:
    recorder = Recorder()
    agent = await agent_for(admin, recorder)
    source, other_session = await new_session(api, agent), await new_session(api, agent)
    only_here = await upload(api, "only.png", png(3, 3))
    shared = await upload(api, "shared.png", png(6, 6))
    pending = await upload(api, "pending.txt", b"not sent yet")
    turn = await send(api, source, "two files", only_here["id"], shared["id"])
    await send(api, other_session, "one of them", shared["id"])
    fork = (await api.gql(FORK, {"m": turn["reply"]["id"]}))["forkSession"]["id"]
    forked = (await api.gql(VIEW, {"s": fork}))["session"]
    assert forked["messages"]["edges"][0]["node"]["attachments"] == [only_here, shared]
    # The fork's runs send the files too (its history refers to the same attachments).
    await send(api, fork, "in the fork")
    assert prompt_items(recorder.requests[-1][:1])[1].data == png(3, 3)

    assert (await api.gql(DELETE, {"s": source}))["deleteSession"] is True
    left = {
        str(r["id"])
        for r in await sql.fetch(
            "SELECT id FROM attachments WHERE user_id = (SELECT user_id FROM attachments WHERE id = $1)",
            uuid.UUID(pending["id"]),
        )
    }
    assert left == {only_here["id"], shared["id"], pending["id"]}  # the fork still refers to both

    assert (await api.gql(DELETE, {"s": fork}))["deleteSession"] is True
    gone = await api.client.get(only_here["url"], headers={"Authorization": f"Bearer {api.token}"})
    assert gone.status_code == 404
    assert (
        await sql.fetchval("SELECT count(*) FROM attachment_data WHERE id = $1", uuid.UUID(only_here["id"]))
        == 0
    )
    kept = await api.client.get(shared["url"], headers={"Authorization": f"Bearer {api.token}"})
    assert kept.status_code == 200  # other_session refers to it
    # An upload no message refers to is retention's business, not deleteSession's.
    assert (
        await api.client.get(pending["url"], headers={"Authorization": f"Bearer {api.token}"})
    ).status_code == 200


async def _age(sql: Any, attachment_id: str, days: float) -> None:
    await sql.execute(
        "UPDATE attachments SET unreferenced_since = now() - make_interval(days => $2) WHERE id = $1",
        uuid.UUID(attachment_id),
        days,
    )


async def test_retention_deletes_attachments_unreferenced_for_a_day(api: Api, admin: Api, sql: Any) -> None:
    session = await new_session(api, await agent_for(admin, Recorder()))
    orphan = await upload(api, "orphan.txt", b"never sent")
    fresh = await upload(api, "fresh.txt", b"uploaded just now")
    sent = await upload(api, "sent.png", png())
    cleared = await upload(api, "cleared.png", png(2, 2))
    await send(api, session, "with a file", sent["id"], cleared["id"])
    await _age(sql, orphan["id"], 1.01)
    # A referenced attachment carries no mark, however old it is.
    assert (
        await sql.fetchval("SELECT unreferenced_since FROM attachments WHERE id = $1", uuid.UUID(sent["id"]))
        is None
    )

    assert (await retention.sweep_attachments()) is not None
    present = {
        str(r["id"])
        for r in await sql.fetch(
            "SELECT id FROM attachments WHERE id = ANY($1::uuid[])",
            [uuid.UUID(a["id"]) for a in (orphan, fresh, sent, cleared)],
        )
    }
    assert present == {fresh["id"], sent["id"], cleared["id"]}

    # Clearing the history lets go of them: unreferenced from now on, deleted a day later.
    await api.gql(CLEAR, {"s": session})
    since = await sql.fetchval(
        "SELECT unreferenced_since FROM attachments WHERE id = $1", uuid.UUID(sent["id"])
    )
    assert since is not None
    await retention.sweep_attachments()
    assert await sql.fetchval("SELECT count(*) FROM attachments WHERE id = $1", uuid.UUID(sent["id"])) == 1
    await _age(sql, sent["id"], 2)
    await retention.sweep_attachments()
    assert await sql.fetchval("SELECT count(*) FROM attachments WHERE id = $1", uuid.UUID(sent["id"])) == 0
    assert (
        await sql.fetchval("SELECT count(*) FROM attachment_data WHERE id = $1", uuid.UUID(sent["id"])) == 0
    )

    # A claimed attachment is referenced again: the sweep leaves it alone.
    session_2 = await new_session(api, await agent_for(admin, Recorder()))
    await _age(sql, cleared["id"], 3)
    await send(api, session_2, "again", cleared["id"])
    await retention.sweep_attachments()
    assert await sql.fetchval("SELECT count(*) FROM attachments WHERE id = $1", uuid.UUID(cleared["id"])) == 1


async def test_references_gone_another_way_are_noticed_by_the_sweep(api: Api, admin: Api, sql: Any) -> None:
    session = await new_session(api, await agent_for(admin, Recorder()))
    picture = await upload(api, "p.png", png())
    turn = await send(api, session, "hi", picture["id"])
    # As if a message had gone by a path that does not mark its attachments.
    await sql.execute("DELETE FROM messages WHERE id = $1", uuid.UUID(turn["userMessage"]["id"]))
    await retention.sweep_attachments()
    assert (
        await sql.fetchval(
            "SELECT unreferenced_since FROM attachments WHERE id = $1", uuid.UUID(picture["id"])
        )
        is not None
    )


async def test_deleting_a_user_deletes_their_attachments(make_api: Any, admin: Api, sql: Any) -> None:
    gone = await make_api()
    session = await new_session(gone, await agent_for(admin, Recorder()))
    sent = await upload(gone, "sent.png", png())
    kept = await upload(gone, "kept.txt", b"not sent")
    await send(gone, session, "hi", sent["id"])
    await users.delete_user(gone.name)
    ids = [uuid.UUID(sent["id"]), uuid.UUID(kept["id"])]
    assert await sql.fetchval("SELECT count(*) FROM attachments WHERE id = ANY($1::uuid[])", ids) == 0
    assert await sql.fetchval("SELECT count(*) FROM attachment_data WHERE id = ANY($1::uuid[])", ids) == 0


async def test_a_claim_racing_a_deletion_never_leaves_a_dangling_reference(
    api: Api, admin: Api, sql: Any
) -> None:
    agent = await agent_for(admin, Recorder())
    for round_ in range(6):
        source, target = await new_session(api, agent), await new_session(api, agent)
        picture = await upload(api, f"race-{round_}.png", png(2 + round_, 2))
        await send(api, source, "first", picture["id"])
        deleted, sent = await asyncio.gather(
            api.post(DELETE, {"s": source}),
            api.post(SEND, {"s": target, "c": "second", "a": [picture["id"]]}),
        )
        assert deleted.json()["data"]["deleteSession"] is True
        body = sent.json()
        exists = await sql.fetchval(
            "SELECT count(*) FROM attachments WHERE id = $1", uuid.UUID(picture["id"])
        )
        if body.get("errors"):  # the deletion went first: the attachment is gone, nothing was stored
            assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
            assert exists == 0
            assert (await api.gql(VIEW, {"s": target}))["session"]["messageCount"] == 0
        else:  # the claim went first: the other session keeps it
            assert body["data"]["sendMessage"]["run"]["status"] == "COMPLETED"
            assert exists == 1
