"""Account rules: registration, authentication, lookup."""

from __future__ import annotations

from typing import Any

from advanced_alchemy.exceptions import IntegrityError
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from email_validator import EmailNotValidError, validate_email
from litestar.exceptions import NotAuthorizedException, ValidationException
from sqlalchemy import exc as sa_exc

from instashare.accounts.models import User
from instashare.accounts.passwords import hash_password, verify_password
from instashare.accounts.principals import Principal
from instashare.accounts.schemas import UserCreate
from instashare.errors import ConflictException
from instashare.validation import invalid, reject_control_characters

INVALID_CREDENTIALS = "incorrect email or password"


def normalize_email(email: str) -> str:
    """Trimmed, syntax-checked and lower-cased: the form in which emails are stored and compared."""
    candidate = email.strip()
    try:
        valid = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise invalid("email", str(exc), detail=f"invalid email address: {exc}") from exc
    return valid.normalized.lower()


class UserService(SQLAlchemyAsyncRepositoryService[User]):
    class Repo(SQLAlchemyAsyncRepository[User]):
        model_type = User

    repository_type = Repo

    async def register(self, data: UserCreate) -> User:
        email = normalize_email(data.email)
        full_name = data.full_name.strip() if data.full_name else None
        reject_control_characters("full_name", full_name)
        user = User(
            email=email,
            full_name=full_name or None,
            hashed_password=await hash_password(data.password),
        )
        try:
            # Only the unique index decides: two concurrent registrations cannot both pass it.
            created: User = await self.repository.add(user, auto_commit=True)
            return created
        except IntegrityError as exc:
            # advanced-alchemy wraps every statement error this way; only a real constraint
            # violation (the unique email index) is a conflict.
            if not isinstance(exc.__cause__, sa_exc.IntegrityError):
                raise
            raise ConflictException(detail="an account with this email already exists") from exc

    async def authenticate(self, email: str, password: str) -> User:
        try:
            normalized = normalize_email(email)
        except ValidationException:
            normalized = None
        user = await self.get_one_or_none(email=normalized) if normalized else None
        valid = await verify_password(password, user.hashed_password if user else None)
        if user is None or not valid or not user.is_active:
            raise NotAuthorizedException(detail=INVALID_CREDENTIALS)
        return user


def user_fields(user: User | Principal) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "full_name": user.full_name,
        "created_at": user.created_at,
    }
