"""Idempotent requests: the first response to an `Idempotency-Key`, replayed for repeats.

One wrapper for `POST /send`, the invoke endpoints and the automation steps that send. A key
is 1 to 255 characters and belongs to one environment. The first response is stored with a
hash of its request body, in the request's own transaction, until the TTL
(`TIDINGS_IDEMPOTENCY_TTL_SECONDS`) ends. A repeat of the same body gets the stored response;
the same key with another body is refused with 409 `idempotency_key_reused`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy.orm import Session

from tidings.db import Database, Outbox
from tidings.errors import BadRequest, Conflict
from tidings.kit.time import utcnow
from tidings.message.repository import IdempotencyRepository

HEADER = "Idempotency-Key"

# A stored or new response: its status code and JSON body.
Answer = tuple[int, dict[str, Any]]


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """A request under an Idempotency-Key: `replay` before doing the work, `claim` after it,
    both in the unit of work that does it."""

    environment_id: str
    key: str
    body_hash: str
    ttl: timedelta

    @classmethod
    def of(
        cls, environment_id: str, key: str | None, body: dict[str, Any], ttl_seconds: float
    ) -> IdempotentRequest | None:
        """None without a key; 400 for a key that is empty or longer than 255 characters."""
        if key is None:
            return None
        if not 0 < len(key) <= 255:
            raise BadRequest(f"{HEADER} must be 1 to 255 characters.", field=HEADER)
        return cls(environment_id, key, request_hash(body), timedelta(seconds=ttl_seconds))

    def replay(self, session: Session, *, refuse_other_body: bool = True) -> Answer | None:
        """The response stored for this key, or None when there is none (or it expired).

        A response stored for a different body is a 409, unless `refuse_other_body` is
        False: then it is replayed as well (an automation step's key says "once", whatever
        the data of the run that reaches it)."""
        record = IdempotencyRepository(session).get(self.environment_id, self.key)
        if record is None:
            return None
        if refuse_other_body and record.request_hash != self.body_hash:
            raise Conflict(
                f"{HEADER} {self.key!r} was already used with a different request body. Use a "
                "new key for a new request, or resend the original body to get its original "
                "response.",
                code="idempotency_key_reused",
                field=HEADER,
            )
        return record.status_code, record.body

    def claim(self, session: Session, answer: Answer) -> bool:
        """Store the first response until the TTL ends; False when another request holds
        the key."""
        status_code, body = answer
        return IdempotencyRepository(session).claim(
            self.environment_id,
            self.key,
            self.body_hash,
            status_code,
            body,
            utcnow() + self.ttl,
        )


def answer_once(
    database: Database,
    request: IdempotentRequest | None,
    handle: Callable[[Session, Outbox], Answer],
) -> Answer:
    """Run `handle` in one unit of work and answer with what it returns; with a key, a
    repeat answers with the stored response instead, and a first answer is stored in the
    same transaction."""
    with database.write() as (session, outbox):
        if request is not None:
            replayed = request.replay(session)
            if replayed is not None:
                return replayed
        answer = handle(session, outbox)
        if request is not None:
            request.claim(session, answer)
    return answer
