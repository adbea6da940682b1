"""The application factory: ``instashare.app:create_app``."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.plugins.structlog import StructlogConfig, StructlogPlugin

from instashare import __version__
from instashare.accounts.controllers import AuthController
from instashare.accounts.security import build_auth
from instashare.config import Settings, get_settings
from instashare.db import alchemy_config
from instashare.documents.controllers import DocumentController
from instashare.errors import (
    UNAVAILABLE_HANDLERS,
    not_authorized_handler,
    too_many_requests_handler,
)
from instashare.health import health
from instashare.jobs import queue_lifespan
from instashare.logs import logging_config, request_logging_config
from instashare.ratelimit import STORE_NAME, rate_limit_config, rate_limit_store
from instashare.storage import Storage


def storage_from_settings(settings: Settings) -> Storage:
    return Storage.from_settings(settings.storage_settings())


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    alchemy = alchemy_config(settings)
    auth = build_auth(settings, alchemy)
    return Litestar(
        route_handlers=[health, AuthController, DocumentController],
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
        lifespan=[queue_lifespan],
        middleware=[rate_limit_config(settings).middleware],
        stores={STORE_NAME: rate_limit_store(alchemy)},
        exception_handlers={
            NotAuthorizedException: not_authorized_handler,
            TooManyRequestsException: too_many_requests_handler,
            **UNAVAILABLE_HANDLERS,
        },
        state=State(
            {"settings": settings, "storage": storage_from_settings(settings), "auth": auth}
        ),
        openapi_config=OpenAPIConfig(
            title="InstaShare",
            version=__version__,
            description="Upload files, follow their compression, download them as ZIP.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin(), ScalarRenderPlugin()],
        ),
    )
