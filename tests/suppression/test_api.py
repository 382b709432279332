"""`/suppressions`: add one or many, list with filters and pages, remove, CSV out and in,
every refusal in the one error shape, each environment its own list."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tidings.suppression.service import MAX_IMPORT_BYTES


def add(client: TestClient, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/suppressions", json=body, headers=bearer(key))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def listed(client: TestClient, key: str, **params: Any) -> list[tuple[str, str, str | None]]:
    response = client.get("/suppressions", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    return [
        (item["channel"], item["address"], item["topic_id"]) for item in response.json()["items"]
    ]


def test_one_or_many_addresses_go_on_the_list_normalized_and_once(
    client: TestClient, keys: Keys
) -> None:
    one = add(client, keys.test, {"channel": "email", "address": "  Ada@Example.ORG "})
    assert one["added"] == 1
    (entry,) = one["items"]
    assert {k: v for k, v in entry.items() if k != "created_at"} == {
        "channel": "email",
        "address": "ada@example.org",
        "topic_id": None,
        "reason": "MANUAL",
        "source": "api",
        "detail": None,
        "user_id": None,
    }
    many = add(
        client,
        keys.test,
        {
            "suppressions": [
                {"channel": "email", "address": "ADA@example.org"},
                {"channel": "sms", "address": "+1 (555) 555-0100", "reason": "COMPLAINT"},
                {"channel": "email", "address": "bob@example.org", "topic_id": "promo"},
                {"channel": "email", "address": "bob@example.org", "detail": "asked by phone"},
            ]
        },
    )
    # Ada was there already: her entry stays as it was.
    assert many["added"] == 3
    assert [(i["channel"], i["address"], i["topic_id"], i["reason"]) for i in many["items"]] == [
        ("email", "ada@example.org", None, "MANUAL"),
        ("sms", "+15555550100", None, "COMPLAINT"),
        ("email", "bob@example.org", "promo", "MANUAL"),
        ("email", "bob@example.org", None, "MANUAL"),
    ]
    assert listed(client, keys.test) == [
        ("email", "ada@example.org", None),
        ("sms", "+15555550100", None),
        ("email", "bob@example.org", "promo"),
        ("email", "bob@example.org", None),
    ]
    # Another environment's list is its own.
    assert listed(client, keys.production) == []


def test_the_list_filters_by_channel_address_and_topic_and_pages(
    client: TestClient, keys: Keys
) -> None:
    add(
        client,
        keys.test,
        {
            "suppressions": [
                {"channel": "email", "address": f"user{number}@example.org"} for number in range(5)
            ]
            + [
                {"channel": "sms", "address": "+15555550100"},
                {"channel": "email", "address": "user1@example.org", "topic_id": "promo"},
                {"channel": "email", "address": "other_%@example.org"},
            ]
        },
    )
    assert [a for _, a, _ in listed(client, keys.test, channel="sms")] == ["+15555550100"]
    assert listed(client, keys.test, address="USER1") == [
        ("email", "user1@example.org", None),
        ("email", "user1@example.org", "promo"),
    ]
    # The prefix is matched literally: % and _ are not wildcards.
    assert listed(client, keys.test, address="other_%") == [("email", "other_%@example.org", None)]
    assert listed(client, keys.test, address="user_") == []
    assert listed(client, keys.test, topic_id="promo") == [("email", "user1@example.org", "promo")]
    seen = []
    cursor = None
    while True:
        params: dict[str, Any] = {"channel": "email", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/suppressions", params=params, headers=bearer(keys.test)).json()
        seen.extend(item["address"] for item in page["items"])
        cursor = page["paging"]["cursor"]
        if not page["paging"]["more"]:
            break
    assert seen == [
        *(f"user{number}@example.org" for number in range(5)),
        "user1@example.org",
        "other_%@example.org",
    ]


def test_an_address_comes_off_the_list_whole_or_for_one_topic(
    client: TestClient, keys: Keys
) -> None:
    add(
        client,
        keys.test,
        {
            "suppressions": [
                {"channel": "email", "address": "ada@example.org"},
                {"channel": "email", "address": "ada@example.org", "topic_id": "promo"},
                {"channel": "email", "address": "bob@example.org", "topic_id": "promo"},
                {"channel": "sms", "address": "+15555550100"},
            ]
        },
    )
    headers = bearer(keys.test)
    scoped = client.delete("/suppressions/email/bob@example.org?topic_id=promo", headers=headers)
    assert scoped.status_code == 204
    every = client.delete("/suppressions/email/ADA@example.org", headers=headers)
    assert every.status_code == 204
    assert client.delete("/suppressions/sms/+15555550100", headers=headers).status_code == 204
    assert listed(client, keys.test) == []
    missing = client.delete("/suppressions/email/ada@example.org", headers=headers)
    assert missing.status_code == 404
    assert missing.json() == {
        "code": "suppression_not_found",
        "message": "'ada@example.org' is not on the email suppression list of this "
        "environment. List the entries with GET /suppressions?address=…",
        "field": "address",
    }


def test_bad_entries_are_refused_naming_the_field(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    bad_email = client.post(
        "/suppressions",
        json={
            "suppressions": [
                {"channel": "email", "address": "ada@example.org"},
                {"channel": "email", "address": "not an address"},
            ]
        },
        headers=headers,
    )
    assert bad_email.status_code == 400
    assert bad_email.json()["code"] == "invalid_address"
    assert bad_email.json()["field"] == "suppressions.1.address"
    bad_phone = client.post(
        "/suppressions", json={"channel": "sms", "address": "call me"}, headers=headers
    )
    assert (bad_phone.status_code, bad_phone.json()["field"]) == (400, "address")
    assert "E.164" in bad_phone.json()["message"]
    bad_channel = client.post(
        "/suppressions", json={"channel": "fax", "address": "1234"}, headers=headers
    )
    assert bad_channel.status_code == 400
    assert bad_channel.json()["code"] == "invalid_request"
    bad_filter = client.get("/suppressions?channel=fax", headers=headers)
    assert bad_filter.status_code == 400
    # Nothing of a refused request was stored.
    assert listed(client, keys.test) == []
    assert client.get("/suppressions").status_code == 401


def test_the_export_imports_as_it_is_into_another_environment(
    client: TestClient, keys: Keys
) -> None:
    add(
        client,
        keys.test,
        {
            "suppressions": [
                {"channel": "email", "address": "ada@example.org", "detail": 'said "stop", twice'},
                {"channel": "sms", "address": "+15555550100", "reason": "HARD_BOUNCE"},
                {"channel": "email", "address": "bob@example.org", "topic_id": "promo"},
            ]
        },
    )
    exported = client.get("/suppressions.csv", headers=bearer(keys.test))
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.splitlines()
    assert lines[0] == "channel,address,topic_id,reason,source,detail,created_at"
    assert lines[1].startswith('email,ada@example.org,,MANUAL,api,"said ""stop"", twice",')
    assert lines[2].startswith("sms,+15555550100,,HARD_BOUNCE,api,,")
    assert lines[3].startswith("email,bob@example.org,promo,MANUAL,api,,")

    imported = client.post(
        "/suppressions/import",
        content=exported.content,
        headers={**bearer(keys.production), "Content-Type": "text/csv"},
    )
    assert imported.status_code == 200, imported.text
    assert imported.json() == {"rows": 3, "added": 3, "existing": 0}
    entries = client.get("/suppressions", headers=bearer(keys.production)).json()["items"]
    assert [
        (e["address"], e["topic_id"], e["reason"], e["source"], e["detail"]) for e in entries
    ] == [
        ("ada@example.org", None, "MANUAL", "import", 'said "stop", twice'),
        ("+15555550100", None, "HARD_BOUNCE", "import", None),
        ("bob@example.org", "promo", "MANUAL", "import", None),
    ]
    again = client.post(
        "/suppressions/import",
        content=exported.content,
        headers={**bearer(keys.production), "Content-Type": "text/csv"},
    )
    assert again.json() == {"rows": 3, "added": 0, "existing": 3}


def test_a_csv_with_bad_rows_imports_nothing_and_names_each_line(
    client: TestClient, keys: Keys
) -> None:
    headers = {**bearer(keys.test), "Content-Type": "text/csv"}
    csv = (
        "\ufeffAddress,Channel,Reason\r\n"
        "ada@example.org,email,\r\n"
        "\r\n"
        "not-an-address,email,\r\n"
        "+15555550100,sms,LOST\r\n"
        "bob@example.org,fax,\r\n"
        '"carol@example.org",email,HARD_BOUNCE\r\n'
    )
    refused = client.post("/suppressions/import", content=csv.encode(), headers=headers)
    assert refused.status_code == 400
    body = refused.json()
    assert body["code"] == "invalid_csv_rows"
    assert body["field"] == "line 4"
    assert body["message"].startswith("3 rows are invalid, so nothing was imported.")
    assert "line 4: The email address 'not-an-address' is not an email address" in body["message"]
    assert "line 5: 'LOST' is not a suppression reason" in body["message"]
    assert "line 6: 'fax' is not a channel" in body["message"]
    assert listed(client, keys.test) == []

    no_header = client.post(
        "/suppressions/import", content=b"ada@example.org,email\n", headers=headers
    )
    assert (no_header.status_code, no_header.json()["field"]) == (400, "line 1")
    not_utf8 = client.post(
        "/suppressions/import", content=b"channel,address\nemail,\xff@x.org\n", headers=headers
    )
    assert (not_utf8.status_code, not_utf8.json()["code"]) == (400, "invalid_csv")
    too_large = client.post(
        "/suppressions/import",
        content=b"channel,address\n" + b"email,a@example.org\n" * (MAX_IMPORT_BYTES // 20 + 1),
        headers=headers,
    )
    assert too_large.status_code == 413
    assert too_large.json()["code"] == "csv_too_large"

    accepted = client.post(
        "/suppressions/import",
        content=csv.replace("not-an-address", "dan@example.org")
        .replace("LOST", "")
        .replace("fax", "email")
        .encode(),
        headers=headers,
    )
    assert accepted.json() == {"rows": 5, "added": 5, "existing": 0}
    assert [a for _, a, _ in listed(client, keys.test)] == [
        "ada@example.org",
        "dan@example.org",
        "+15555550100",
        "bob@example.org",
        "carol@example.org",
    ]
