"""The global audit log is the client's record: no other client's token can write into it."""

from __future__ import annotations

from tests.component.deploy_helpers import Rest
from tests.harness import InProcessCoordinator


def test_a_refused_call_of_another_clients_token_is_not_filed_under_this_client(
        coordinator: InProcessCoordinator) -> None:
    c = coordinator
    rest = Rest(c)
    evil_client = rest("POST", "/clients", expect=201, json={"name": "Evil"})["id"]
    forged = "EVIL-forged: admin bob revoked all devices"
    evil = rest("POST", "/api-tokens", expect=201, json={"clientIds": [evil_client], "role": "admin", "name": forged})
    # Evil's admin aims at this client's device: refused (404/403), and its row is not ours
    Rest(c, token=evil["token"])("POST", f"/clients/{c.client_id}/devices/0b7f2d6e-1111-4a4a-9a9a-000000000001/revoke",
                                 expect=403)
    viewer = rest("POST", "/api-tokens", expect=201, json={"clientIds": [c.client_id], "role": "viewer", "name": "v"})
    ours = Rest(c, token=viewer["token"])("GET", "/audit")["data"]
    assert ours and not any(row["actor"] == evil["id"] or row["actorName"] == forged for row in ours), ours
    # Evil sees its own refusal
    theirs = Rest(c, token=evil["token"])("GET", "/audit")["data"]
    assert any(row["actor"] == evil["id"] and row["outcome"] != "ok" for row in theirs), theirs
