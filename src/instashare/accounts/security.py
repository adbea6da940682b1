"""Bearer access tokens (JWT signed with SECRET_KEY) guarding every non-public route.

A token names its account (``sub``) and the account's ``token_version`` when it was issued
(``ver``); it is honoured while the account is active and still at that version, so a password
change or "sign out everywhere" (which bump the version) revokes every earlier token at once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.authentication import AuthenticationResult
from litestar.security.jwt import (
    JWTCookieAuthenticationMiddleware,
    OAuth2PasswordBearerAuth,
    Token,
)

from instashare.accounts.principals import Principal, PrincipalCache
from instashare.accounts.schemas import AccessToken
from instashare.config import Settings

LOGIN_PATH = "/api/auth/login"
# A share's link carries its own credential (the token in the path, and an unlock token).
PUBLIC_PATHS = ["^/health$", "^/schema", "^/api/auth/register$", f"^{LOGIN_PATH}$", "^/s/"]
BEARER = "bearer"
TOKEN_VERSION_CLAIM = "ver"  # noqa: S105 - a claim name, not a secret


class BearerAuthenticationMiddleware(JWTCookieAuthenticationMiddleware):
    """Only ``Authorization: Bearer <token>`` authenticates (the scheme in any case, RFC 7235).

    Litestar's OAuth2 middleware also takes a ``token`` cookie, which no form's CSRF check
    would guard, and takes whatever follows the first space of the header, so that
    ``Basic <valid token>`` would pass as well.
    """

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get(self.auth_header)
        if not header:
            raise NotAuthorizedException("send Authorization: Bearer <access token>")
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != BEARER or not credentials.strip():
            raise NotAuthorizedException("only the Bearer scheme is accepted")
        result: AuthenticationResult = await self.authenticate_token(
            credentials.strip(), connection
        )
        return result


def build_auth(
    settings: Settings, principals: PrincipalCache
) -> OAuth2PasswordBearerAuth[Principal, Token]:
    async def retrieve_user(
        token: Token, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> Principal | None:
        try:
            user_id = UUID(token.sub)
        except ValueError:
            return None
        principal = await principals.get(user_id)
        if (
            principal is None
            or not principal.is_active
            or token.extras.get(TOKEN_VERSION_CLAIM) != principal.token_version
        ):
            return None
        return principal

    return OAuth2PasswordBearerAuth[Principal, Token](
        token_secret=settings.secret_key,
        token_url=LOGIN_PATH,
        retrieve_user_handler=retrieve_user,
        default_token_expiration=timedelta(seconds=settings.access_token_ttl_seconds),
        exclude=PUBLIC_PATHS,
        # HEAD must be authenticated like GET (the default exempts it); CORS preflight is not.
        exclude_http_methods=["OPTIONS"],
        authentication_middleware_class=BearerAuthenticationMiddleware,
        description="Log in at /api/auth/login, then send `Authorization: Bearer <token>`.",
    )


class AccessTokens:
    """Issues the bearer tokens that ``auth`` verifies (a plain class, so it can be injected)."""

    def __init__(
        self, auth: OAuth2PasswordBearerAuth[Principal, Token], settings: Settings
    ) -> None:
        self._auth = auth
        self._lifetime = timedelta(seconds=settings.access_token_ttl_seconds)

    def issue(self, user_id: UUID, token_version: int) -> AccessToken:
        token = self._auth.create_token(
            identifier=str(user_id),
            token_expiration=self._lifetime,
            token_extras={TOKEN_VERSION_CLAIM: token_version},
        )
        return AccessToken(access_token=token, expires_in=int(self._lifetime.total_seconds()))
