"""The webhook of a fetch-data step or a send-list data source: `{url, method, headers, body,
params}`, checked when saved and turned into a request when the step runs."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, PlainValidator, ValidationInfo

from tidings.automation.steps.base import FetchCall, Fields, StepFailed
from tidings.automation.steps.fields import (
    Needed,
    OptionalObject,
    Text,
    Value,
    invalid,
    saving,
)
from tidings.automation.steps.values import quote, resolve, text
from tidings.kit.outbound import OutboundRefused

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _http_url(value: Any, info: ValidationInfo) -> Any:
    """A URL written out (no Liquid) is checked when saved; one built from data when the
    request is made."""
    checks = saving(info)
    if checks is None or not isinstance(value, str) or "{" in value:
        return value
    if not value.startswith(("http://", "https://")):
        raise invalid(f"{quote(value)} is not an http(s) URL")
    try:
        checks.outbound.check_url(value)
    except OutboundRefused as exc:
        raise invalid(f"{exc}.") from exc
    return value


def _method(value: Any) -> str:
    if isinstance(value, str) and value.upper() in HTTP_METHODS:
        return value.upper()
    raise invalid(f"{quote(value)} is not one of {', '.join(HTTP_METHODS)}")


class Webhook(Fields):
    what = "a webhook field"

    url: Annotated[Text, Needed("a webhook needs a url"), AfterValidator(_http_url)]
    method: Annotated[str, PlainValidator(_method)] = "GET"
    headers: OptionalObject = None
    body: Value = None
    params: OptionalObject = None

    def call(
        self, names: dict[str, Any], idempotency_key: Any = None, user_id: str | None = None
    ) -> FetchCall:
        """The request, its values resolved against `names`."""
        headers = resolve(self.headers, names) or {}
        params = resolve(self.params, names) or {}
        call_headers = {str(key): str(value) for key, value in headers.items()}
        if idempotency_key:
            key = text(idempotency_key, names)
            if key:
                call_headers.setdefault("Idempotency-Key", key)
        url = str(resolve(self.url, names) or "")
        if not url.startswith(("http://", "https://")):
            raise StepFailed(f"the webhook url became {url!r}, which is not an http(s) URL")
        return FetchCall(
            method=self.method,
            url=url,
            headers=call_headers,
            params={str(key): str(value) for key, value in params.items()},
            body=resolve(self.body, names),
            user_id=user_id,
        )
