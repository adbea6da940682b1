"""HTTP routes of the accounts domain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import SerializationException, ValidationException
from litestar.security.jwt import Token
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from instashare.accounts.principals import Principal
from instashare.accounts.schemas import AccessToken, Credentials, UserCreate, UserRead
from instashare.accounts.security import AccessTokens
from instashare.accounts.services import UserService, user_fields


async def provide_user_service(db_session: AsyncSession) -> AsyncIterator[UserService]:
    async with UserService.new(session=db_session) as service:
        yield service


async def read_credentials(request: Request[Any, Any, Any]) -> Credentials:
    """JSON ``{"email", "password"}``, or the OAuth2 password form (``username``, ``password``)."""
    if request.content_type[0] == RequestEncodingType.URL_ENCODED.value:
        form = await request.form()
        payload: Any = {"email": form.get("username"), "password": form.get("password")}
    else:
        try:
            payload = await request.json()
        except SerializationException as exc:
            raise ValidationException(detail=f"the body is not valid JSON: {exc}") from exc
    try:
        return msgspec.convert(payload, Credentials)
    except msgspec.ValidationError as exc:
        raise ValidationException(detail=f"invalid login request: {exc}") from exc


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]
    dependencies = {"users": Provide(provide_user_service)}

    @post("/register", status_code=HTTP_201_CREATED, summary="Create an account")
    async def register(self, users: UserService, data: UserCreate) -> UserRead:
        user = await users.register(data)
        return UserRead(**user_fields(user))

    @post(
        "/login",
        status_code=HTTP_200_OK,
        summary="Log in and receive a bearer access token",
        description=(
            'Send JSON `{"email", "password"}`, or the OAuth2 password form '
            "(`application/x-www-form-urlencoded` with `username` and `password`)."
        ),
    )
    async def login(
        self,
        request: Request[Any, Any, State],
        users: UserService,
        access_tokens: AccessTokens,
    ) -> AccessToken:
        credentials = await read_credentials(request)
        user = await users.authenticate(credentials.email, credentials.password)
        return access_tokens.issue(user.id, user.token_version)

    @get("/me", summary="The current user")
    async def me(self, request: Request[Principal, Token, Any]) -> UserRead:
        return UserRead(**user_fields(request.user))
