"""Console users: argon2id password hashes, roles admin / operator / viewer; disabling and
removing them."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from smartpbx_ari.errors import UserFacingError
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.models import Role, User

_HASHER = PasswordHasher()
_DUMMY = _HASHER.hash("an unused password, so a missing user costs the same time")
_NAME = re.compile(r"^[A-Za-z0-9._-]{2,64}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,185}$")
MIN_PASSWORD = 10


class UserError(UserFacingError, ValueError):
    code = "user-invalid"


def add_user(db: Database, name: str, password: str, role: str, email: str = "",
             endpoint: str = "") -> User:
    if not _NAME.match(name):
        raise UserError(f"name: {name!r} must be 2-64 letters, digits, '.', '_' or '-'")
    if role not in {r.value for r in Role}:
        raise UserError(f"role: {role!r} is not one of admin, operator, viewer")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password: at least {MIN_PASSWORD} characters")
    email = email or f"{name}@localhost"
    if not _EMAIL.match(email):
        raise UserError(f"email: {email!r} is not an e-mail address")
    with db.session() as session:
        taken = session.scalar(select(User.id).where(or_(User.name == name,
                                                         User.email == email)))
        if taken is not None:
            raise UserError(f"name: a user {name!r} (or e-mail {email!r}) exists already")
        user = User(name=name, email=email, password_hash=_HASHER.hash(password), role=role,
                    endpoint=endpoint)
        session.add(user)
        session.flush()
        session.expunge(user)
    return user


def authenticate(db: Database, login: str, password: str) -> User | None:
    """The active user whose name or e-mail is ``login`` and whose password matches."""
    with db.session() as session:
        user = session.scalar(select(User).where(or_(User.email == login, User.name == login),
                                                 User.active))
        if user is not None:
            session.expunge(user)
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


def role_of(db: Database, name: str) -> str | None:
    """The role of the active user ``name``; None when there is none (or disabled)."""
    with db.session() as session:
        return session.scalar(select(User.role).where(User.name == name, User.active))


def disable_user(db: Database, login: str) -> User:
    """Disable the user whose e-mail or name is ``login`` (tokens and sockets end)."""
    with db.session() as session:
        user = _find(session, login)
        user.active = False
        session.flush()
        session.expunge(user)
    return user


def remove_user(db: Database, login: str) -> User:
    """Delete the user whose e-mail or name is ``login`` (the audit log keeps the name)."""
    with db.session() as session:
        user = _find(session, login)
        session.delete(user)
        session.flush()
        session.expunge(user)
    return user


def _find(session: Session, login: str) -> User:
    user = session.scalar(select(User).where(or_(User.email == login, User.name == login)))
    if user is None:
        raise UserError(f"user: no user with e-mail or name {login!r}")
    return user


def get_user(db: Database, name: str) -> User | None:
    with db.session() as session:
        user = session.scalar(select(User).where(User.name == name, User.active))
        if user is not None:
            session.expunge(user)
        return user
