"""Bearer access tokens (JWT signed with SECRET_KEY) guarding every non-public route."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar.connection import ASGIConnection
from litestar.security.jwt import OAuth2PasswordBearerAuth, Token

from instashare.accounts.models import User
from instashare.accounts.schemas import AccessToken
from instashare.accounts.services import UserService
from instashare.config import Settings

LOGIN_PATH = "/api/auth/login"
# A share's link carries its own credential (the token in the path, and an unlock token).
PUBLIC_PATHS = ["^/health$", "^/schema", "^/api/auth/register$", f"^{LOGIN_PATH}$", "^/s/"]


def build_auth(
    settings: Settings, alchemy: SQLAlchemyAsyncConfig
) -> OAuth2PasswordBearerAuth[User, Token]:
    async def retrieve_user(
        token: Token, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> User | None:
        try:
            user_id = UUID(token.sub)
        except ValueError:
            return None
        # The request's own session, so the user row is read once per request.
        session = alchemy.provide_session(connection.app.state, connection.scope)
        return await UserService(session=session).get_active(user_id)

    return OAuth2PasswordBearerAuth[User, Token](
        token_secret=settings.secret_key,
        token_url=LOGIN_PATH,
        retrieve_user_handler=retrieve_user,
        default_token_expiration=timedelta(seconds=settings.access_token_ttl_seconds),
        exclude=PUBLIC_PATHS,
        # HEAD must be authenticated like GET (the default exempts it); CORS preflight is not.
        exclude_http_methods=["OPTIONS"],
        description="Log in at /api/auth/login, then send `Authorization: Bearer <token>`.",
    )


class AccessTokens:
    """Issues the bearer tokens that ``auth`` verifies (a plain class, so it can be injected)."""

    def __init__(self, auth: OAuth2PasswordBearerAuth[User, Token], settings: Settings) -> None:
        self._auth = auth
        self._lifetime = timedelta(seconds=settings.access_token_ttl_seconds)

    def issue(self, user: User) -> AccessToken:
        token = self._auth.create_token(identifier=str(user.id), token_expiration=self._lifetime)
        return AccessToken(access_token=token, expires_in=int(self._lifetime.total_seconds()))
