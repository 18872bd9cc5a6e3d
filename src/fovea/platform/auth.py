"""Users and tokens: OAuth2 password and refresh grants, revocation, registration, bearer authentication."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from fovea.platform.config import PlatformSettings
from fovea.platform.errors import Forbidden, InputError, OAuthError, Unauthenticated
from fovea.platform.models import Token, User
from fovea.platform.security import hash_password, new_token, token_hash, verify_password

_USERNAME = re.compile(r"[A-Za-z0-9_.@+-]{1,150}")
COMMON_PASSWORDS = {"password", "password1", "12345678", "123456789", "qwertyui", "iloveyou", "admin123", "letmein1"}


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int

    def as_json(self) -> dict[str, object]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": "read write",
        }


@dataclass(frozen=True)
class RegistrationForm:
    """`POST auth/user` (backend-api.md §2): the fields as sent (None when absent); `register` checks each, with its
    own per-field message."""

    username: object = None
    email: object = None
    password: object = None
    first_name: object = None
    last_name: object = None


class AuthService:
    def __init__(self, settings: PlatformSettings) -> None:
        self.settings = settings

    def _check_client(self, client_id: str | None) -> None:
        if client_id != self.settings.oauth_client_id:
            raise OAuthError("invalid_client", status=401)

    def _issue(self, db: Session, user: User) -> IssuedTokens:
        access, refresh = new_token(), new_token()
        issued = now()
        db.add(
            Token(
                user_id=user.id,
                access_hash=token_hash(access),
                refresh_hash=token_hash(refresh),
                access_expires=issued + timedelta(seconds=self.settings.access_token_ttl_s),
                refresh_expires=issued + timedelta(seconds=self.settings.refresh_token_ttl_s),
            )
        )
        return IssuedTokens(access, refresh, self.settings.access_token_ttl_s)

    def token(self, db: Session, form: dict[str, str]) -> IssuedTokens:
        """The token endpoint: `grant_type` password or refresh_token (refresh tokens rotate)."""
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError("invalid_request", "Request is missing grant type.")
        if grant not in ("password", "refresh_token"):
            raise OAuthError("unsupported_grant_type")
        self._check_client(form.get("client_id"))
        if grant == "password":
            username, password = form.get("username"), form.get("password")
            if not username or password is None:
                raise OAuthError("invalid_request", "Request is missing username or password.")
            user = db.scalar(select(User).where(User.username == username))
            if not verify_password(password, user.password_hash if user else None) or not user.is_active:
                raise OAuthError("invalid_grant", "Invalid credentials given.")
            return self._issue(db, user)
        refresh = form.get("refresh_token")
        if not refresh:
            raise OAuthError("invalid_request", "Request is missing refresh token.")
        old = db.scalar(select(Token).where(Token.refresh_hash == token_hash(refresh)))
        if old is None or old.revoked or old.refresh_expires < now() or not old.user.is_active:
            raise OAuthError("invalid_grant", "Invalid credentials given.")
        # One conditional UPDATE: of parallel requests redeeming the same refresh token, only the one that revokes
        # it gets a new pair (the others wait on the row and find it already revoked).
        rotated = db.execute(update(Token).where(Token.id == old.id, Token.revoked.is_(False)).values(revoked=True))
        if rotated.rowcount != 1:
            raise OAuthError("invalid_grant", "Invalid credentials given.")
        return self._issue(db, old.user)

    def revoke(self, db: Session, token: str | None, client_id: str | None) -> None:
        """Revoke the pair holding `token` (either half); unknown tokens are fine."""
        self._check_client(client_id)
        if not token:
            raise InputError("token is required")
        digest = token_hash(token)
        found = db.scalar(select(Token).where(or_(Token.access_hash == digest, Token.refresh_hash == digest)))
        if found is not None:
            found.revoked = True

    def authenticate(self, db: Session, authorization: str | None) -> User:
        """The user behind an `Authorization: Bearer <token>` header."""
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("Authentication credentials were not provided.")
        found = db.scalar(select(Token).where(Token.access_hash == token_hash(value.strip())))
        if found is None or found.revoked or found.access_expires < now() or not found.user.is_active:
            raise Unauthenticated("Invalid or expired token.")
        return found.user

    def register(self, db: Session, form: RegistrationForm) -> User:
        if not self.settings.registration_open:
            raise Forbidden("registration is disabled")
        problems: dict[str, list[str]] = {}
        for key in ("username", "email", "password"):
            if not isinstance(value := getattr(form, key), str) or not value:
                problems[key] = ["This field is required."]
        for key in ("first_name", "last_name"):
            if (value := getattr(form, key)) is not None and not isinstance(value, str):
                problems[key] = ["Not a valid string."]
        if problems:
            raise InputError("invalid registration", {"fields": problems})
        username = normalize_username(str(form.username))
        email, password = str(form.email), str(form.password)
        if problem := username_problem(db, username):
            problems["username"] = [problem]
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            problems["email"] = ["Enter a valid email address."]
        elif db.scalar(select(User).where(func.lower(User.email) == email.lower())):
            problems["email"] = ["This email is already in use."]
        if reason := password_problem(password, username, email):
            problems["password"] = [reason]
        if problems:
            raise InputError("invalid registration", {"fields": problems})
        user = User(
            username=username,
            email=email,
            first_name=str(form.first_name or ""),
            last_name=str(form.last_name or ""),
            password_hash=hash_password(password),
            date_joined=now(),
        )
        db.add(user)
        db.flush()
        return user


def normalize_username(username: str) -> str:
    """NFKC folds compatibility forms (fullwidth `ａｄｍｉｎ`, ligatures) into the plain characters they show."""
    return unicodedata.normalize("NFKC", username)


def username_problem(db: Session, username: str) -> str | None:
    """Why a (normalized) new username is refused, or None.

    Usernames are ASCII only, so no letter from another script can pass for a Latin one (Cyrillic `а` in `аdmin`),
    and unique ignoring case, so `ADMIN` cannot sit beside `admin`.
    """
    if not _USERNAME.fullmatch(username):
        return "ASCII letters, digits and @/./+/-/_ only, at most 150 characters."
    if db.scalar(select(User.id).where(func.lower(User.username) == username.lower()).limit(1)) is not None:
        return "A user with that username already exists."
    return None


def password_problem(password: str, username: str, email: str) -> str | None:
    if len(password) < 8:
        return "This password is too short. It must contain at least 8 characters."
    if password.isdigit():
        return "This password is entirely numeric."
    if password.lower() in COMMON_PASSWORDS:
        return "This password is too common."
    lowered = password.lower()
    for part in (username.lower(), email.lower().split("@")[0]):
        if len(part) >= 3 and (part in lowered or lowered in part):
            return "The password is too similar to the username or e-mail."
    return None
