"""The ASGI application: API routers, error handlers, and the in-process workers."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from tidings import __version__
from tidings.analytics.endpoints import router as analytics_router
from tidings.audience.endpoints import router as audience_router
from tidings.automation.endpoints import router as automation_router
from tidings.broadcast.endpoints import router as broadcast_router
from tidings.callback.endpoints import hits_router
from tidings.callback.endpoints import router as callback_router
from tidings.engagement.endpoints import router as engagement_router
from tidings.errors import BadRequest
from tidings.event.endpoints import router as event_router
from tidings.event.service import segment_event_data
from tidings.home import install as install_home
from tidings.http_errors import (
    answer_error,
    document_errors,
    install_error_handlers,
    internal_error,
)
from tidings.identity.endpoints import router as identity_router
from tidings.inbox.endpoints import router as inbox_router
from tidings.ingest.endpoints import router as ingest_router
from tidings.ingest.fastpath import IngestFastPath
from tidings.ingest.pressure import IngestPressure, no_pause
from tidings.ingest.source_endpoints import router as source_router
from tidings.ingest.tracking import KeyCheck, RateLimiter
from tidings.ingest.writer import IngestWriter
from tidings.list.endpoints import router as list_router
from tidings.message.endpoints import router as message_router
from tidings.notification.endpoints import router as notification_router
from tidings.observability import tracing
from tidings.preference.endpoints import router as preference_router
from tidings.profile.endpoints import router as profile_router
from tidings.provider.endpoints import router as provider_router
from tidings.replay.endpoints import router as replay_router
from tidings.runtime import Runtime
from tidings.scrape.endpoints import router as metrics_router
from tidings.studio.app import mount as mount_studio
from tidings.suppression.endpoints import router as suppression_router
from tidings.tenant.endpoints import router as tenant_router
from tidings.unsubscribe.endpoints import router as unsubscribe_router
from tidings.webhook_out.endpoints import router as webhook_router

logger = logging.getLogger(__name__)


_NUL_IN_URL = BadRequest(
    "The URL contains the NUL character (%00), which no id or filter in Tidings can hold. "
    "Remove it.",
    code="invalid_url",
)


class TidingsAPI(FastAPI):
    """FastAPI, with the ingest hot paths served ahead of its per-request machinery.

    `tidings.ingest.fastpath` answers `POST /inbound/segment` and the Tracking API in plain
    ASGI; placed here rather than as a middleware it also skips FastAPI's per-request
    telemetry check and the middleware stack around the router, a noticeable share of the
    event loop's time for a single-event request. Every other request goes through FastAPI
    as usual.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fast_path = IngestFastPath(self._framework)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope["query_string"]:
            # No id or filter can hold it, and PostgreSQL refuses it in any text.
            await answer_error(scope, _NUL_IN_URL)(scope, receive, send)
            return
        scope["app"] = self  # as Starlette sets it: the fast path finds the writer on it
        await self._fast_path(scope, receive, send)

    async def _framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What the fast path leaves to FastAPI: with tracing on, each request is a `request`
        span, the child of its `traceparent` (a /send's messages, an invoke's run, join it)."""
        if tracing.enabled and scope["type"] == "http":
            await tracing.traced_request(super().__call__, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


_ROUTERS = (
    ingest_router,
    source_router,
    event_router,
    profile_router,
    identity_router,
    tenant_router,
    notification_router,
    message_router,
    provider_router,
    callback_router,
    preference_router,
    unsubscribe_router,
    inbox_router,
    list_router,
    automation_router,
    replay_router,
    audience_router,
    hits_router,
    engagement_router,
    suppression_router,
    webhook_router,
    broadcast_router,
    analytics_router,
    metrics_router,
)


def _lifespan(
    runtime: Runtime, consumer_workers: int
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the ingest writer and, with `consumer_workers > 0`, an in-process consumer."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # How busy the ingest writer is: under a burst its enqueuer hands over fewer,
        # larger jobs and (with ingest priority) the consumer threads give way.
        pressure = IngestPressure()
        writer = IngestWriter(runtime.database, runtime.cipher, pressure)
        writer.start()
        app.state.ingest_writer = writer
        app.state.key_check = KeyCheck(writer, runtime.auth_limits)
        app.state.ingest_pressure = pressure
        consumer = None
        if consumer_workers > 0:
            await asyncio.to_thread(runtime.jobs.start_lease)
            pace = pressure.wait_for_turn if runtime.settings.ingest_priority else no_pause
            consumer = runtime.jobs.consumer(consumer_workers, embedded=True, pace=pace)
            consumer.start()
            # Work left by a crash is picked up now, not a minute from now.
            await asyncio.to_thread(runtime.jobs.recover)
        # Everything built at start lives as long as the process: keep it out of the
        # collector's full scans, which otherwise pause every request for tens of ms.
        gc.freeze()
        try:
            yield
        finally:
            await writer.stop()
            if consumer is not None:
                await asyncio.to_thread(consumer.stop, True)
                await asyncio.to_thread(runtime.jobs.stop_lease)

    return lifespan


def create_app(runtime: Runtime, *, consumer_workers: int = 0) -> FastAPI:
    """Build the app. With `consumer_workers > 0` it also runs a Huey consumer in-process.

    The schema must already be migrated (`tidings.migrate.upgrade`).
    """
    app = TidingsAPI(
        title="Tidings",
        version=__version__,
        summary="Self-hosted notifications from your Segment events, with Courier's API shapes.",
        lifespan=_lifespan(runtime, consumer_workers),
        # tidings.home serves them, with their scripts from the package rather than a CDN.
        docs_url=None,
        redoc_url=None,
    )
    runtime.provide(app.state)
    app.state.event_data = segment_event_data
    app.state.tracking_limiter = RateLimiter.from_settings(runtime.settings)
    install_error_handlers(app)
    app.add_exception_handler(Exception, internal_error)
    document_errors(app)
    for router in _ROUTERS:
        app.include_router(router)
    mount_studio(app, runtime)
    install_home(app)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
