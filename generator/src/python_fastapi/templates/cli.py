"""The app's command line.

    python -m app.cli migrate              # the schema of DATABASE_URL to the latest migration
# admin:begin
    python -m app.cli create-admin EMAIL   # the password is read from standard input
    python -m app.cli grant-admin EMAIL    # an existing account becomes an admin
    python -m app.cli revoke-admin EMAIL

Admins see and change every row of every entity. There is no HTTP route that makes one: the first
admin is made here, by whoever runs the app.
# admin:end

Migrations are a step of their own (the compose file's `migrate` service runs this command once
before the app starts); serving the app never changes the schema.
"""

import argparse
# admin:begin
import getpass
# admin:end
import sys
from pathlib import Path

from alembic import command as _alembic
from alembic.config import Config as _AlembicConfig
# admin:begin
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import hash_password, normalise_email
from app.config import Settings
from app.database import make_engine
from app.system_models import AuthUser
# admin:end

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def migrate() -> None:
    """Upgrades the database of DATABASE_URL to the latest migration (env.py reads the setting)."""
    _alembic.upgrade(_AlembicConfig(str(ALEMBIC_INI)), "head")
# admin:begin


def set_admin(session: Session, email: str, is_admin: bool) -> bool:
    """Makes the account of `email` an admin (or not); False when there is no such account."""
    user = session.scalar(select(AuthUser).where(AuthUser.email == normalise_email(email)))
    if user is None:
        return False
    user.is_admin = is_admin
    session.commit()
    return True


def create_admin(session: Session, email: str, password: str) -> AuthUser:
    if not 10 <= len(password) <= 128:
        raise ValueError("the password must have 10 to 128 characters")
    user = AuthUser(
        email=normalise_email(email), password_hash=hash_password(password), is_admin=True
    )
    session.add(user)
    session.commit()
    return user


def _password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    return sys.stdin.readline().rstrip("\n")


def _admin(command: str, email: str) -> int:
    engine = make_engine(Settings.from_env().database_url)
    try:
        with Session(engine) as session:
            if command == "create-admin":
                create_admin(session, email, _password())
            elif not set_admin(session, email, command == "grant-admin"):
                print(f"no account with the e-mail address {email}", file=sys.stderr)
                return 1
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(f"{command}: done for {email}")
    return 0
# admin:end


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate")
    # admin:begin
    for name in ("create-admin", "grant-admin", "revoke-admin"):
        commands.add_parser(name).add_argument("email")
    # admin:end
    args = parser.parse_args(argv)
    # admin:begin
    if args.command != "migrate":
        return _admin(args.command, args.email)
    # admin:end
    migrate()
    print(f"{args.command}: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
