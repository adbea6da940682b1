"""The application factory: ``instashare.app:create_app``."""

from __future__ import annotations

import gc
from typing import Any, cast

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.plugins.structlog import StructlogConfig, StructlogPlugin

from instashare import __version__
from instashare.accounts.controllers import AuthController
from instashare.accounts.principals import PrincipalCache
from instashare.accounts.security import AccessTokens, build_auth
from instashare.config import Settings, get_settings
from instashare.cors import cors_config
from instashare.db import alchemy_config, create_engine
from instashare.documents.controllers import DocumentController
from instashare.documents.events import DocumentEvents, stream_document_events
from instashare.errors import (
    DEPENDENCY_ERROR_HANDLERS,
    not_authorized_handler,
    too_many_requests_handler,
)
from instashare.health import health
from instashare.logs import logging_config, request_logging_config
from instashare.notifications import Notifications
from instashare.ratelimit import STORE_NAME, rate_limit_config, rate_limit_store
from instashare.shares.controllers import ShareController, SharedWithMeController
from instashare.shares.links import ShareKeys
from instashare.shares.public import PublicShareController
from instashare.storage import Storage
from instashare.uploads.controllers import UploadController, add_tus_resumable
from instashare.worker.queue import JobQueue
from instashare.worker.runner import queue_lifespan


def freeze_startup_objects() -> None:
    """Exempt everything startup built from garbage collection (``gc.freeze``).

    Modules, routes and schemas are ~170,000 objects that live as long as the process; a full
    collection walks them all (~85 ms measured), a pause that struck requests at random, most
    often those that allocate much (a share's ZIP of a thousand files). Frozen, they are skipped.
    """
    gc.collect()
    gc.freeze()


def provide_queue(state: State) -> JobQueue | None:
    """The job queue, or None while it is still connecting (see ``queue_lifespan``)."""
    return cast("JobQueue | None", state.queue)


def create_app(settings: Settings | None = None) -> Litestar:
    """The whole API, built from ``settings`` (the environment's when not given)."""
    settings = settings or get_settings()
    engine = create_engine(settings)
    alchemy = alchemy_config(engine)
    notifications = Notifications(settings.database_url)
    principals = PrincipalCache(engine, notifications)
    document_events = DocumentEvents(engine, notifications)
    auth = build_auth(settings, principals)
    storage = Storage.from_settings(settings.storage_settings())

    def provide_settings() -> Settings:
        return settings

    def provide_storage() -> Storage:
        return storage

    def provide_document_events() -> DocumentEvents:
        return document_events

    access_tokens = AccessTokens(auth, settings)

    def provide_access_tokens() -> AccessTokens:
        return access_tokens

    share_keys = ShareKeys.from_settings(settings)

    def provide_share_keys() -> ShareKeys:
        return share_keys

    # Handed to handlers as typed parameters (``settings: Settings``), never read from state.
    dependencies: dict[str, Any] = {
        "settings": Provide(provide_settings, use_cache=True, sync_to_thread=False),
        "storage": Provide(provide_storage, use_cache=True, sync_to_thread=False),
        "access_tokens": Provide(provide_access_tokens, use_cache=True, sync_to_thread=False),
        "share_keys": Provide(provide_share_keys, use_cache=True, sync_to_thread=False),
        "queue": Provide(provide_queue, sync_to_thread=False),
        "document_events": Provide(provide_document_events, use_cache=True, sync_to_thread=False),
    }
    return Litestar(
        route_handlers=[
            health,
            AuthController,
            DocumentController,
            stream_document_events,
            UploadController,
            ShareController,
            SharedWithMeController,
            PublicShareController,
        ],
        dependencies=dependencies,
        plugins=[
            SQLAlchemyPlugin(config=alchemy),
            StructlogPlugin(
                StructlogConfig(
                    structlog_logging_config=logging_config(settings),
                    middleware_logging_config=request_logging_config(),
                )
            ),
        ],
        on_app_init=[auth.on_app_init],
        before_send=[add_tus_resumable],
        cors_config=cors_config(settings),
        on_startup=[freeze_startup_objects],
        on_shutdown=[storage.close],
        lifespan=[lambda _: notifications.running(), queue_lifespan(settings)],
        middleware=[rate_limit_config(settings).middleware],
        stores={STORE_NAME: rate_limit_store(alchemy)},
        exception_handlers={
            NotAuthorizedException: not_authorized_handler,
            TooManyRequestsException: too_many_requests_handler,
            **DEPENDENCY_ERROR_HANDLERS,
        },
        openapi_config=OpenAPIConfig(
            title="InstaShare",
            version=__version__,
            description="Upload files, follow their compression, download them as ZIP, share them.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin(), ScalarRenderPlugin()],
        ),
    )
