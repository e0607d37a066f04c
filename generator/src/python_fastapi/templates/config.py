"""Settings, read once from the environment (see .env.example).

Secrets fail closed: the app has no built-in signing key. APP_ENV (compared ignoring case)
defaults to `production`, which refuses to start without a JWT_SECRET of at least 32 bytes that is
not a placeholder. `development` without one signs with a random key made at start-up (tokens
then end with the process) and says so in the log.
"""

import dataclasses
import logging
import os
import secrets
from typing import Any

_LOG = logging.getLogger(__name__)

# Whether the app has accounts (an auth feature), so it needs a signing key.
USES_TOKENS = __USES_TOKENS__
SECRET_MIN_BYTES = 32
# Values of JWT_SECRET that are examples, not secrets (.env.example ships the first).
PLACEHOLDERS = (
    "replace-with-the-output-of-python-c-import-secrets-print-secrets-token-urlsafe-48",
    "change-me",
    "changeme",
    "secret",
)
ENVIRONMENTS = ("production", "development", "test")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
_DEFAULT_TYPES = __FILE_TYPES__


def _flag(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise RuntimeError(f"{name} must be true or false, not {value!r}")


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///./app.db"
    app_env: str = "production"
    jwt_secret: str = dataclasses.field(default="", repr=False)
    jwt_expires_minutes: int = 15
    jwt_issuer: str = "generated-app"
    refresh_expires_days: int = 30
    allow_registration: bool = __REGISTRATION_OPEN__
    login_max_attempts: int = 10
    login_window_seconds: int = 60
    file_storage_dir: str = "./data/files"
    file_max_bytes: int = __FILE_MAX_BYTES__
    file_allowed_types: tuple[str, ...] = _DEFAULT_TYPES
    # Browser origins allowed to call the API (CORS); none by default, `*` for any.
    cors_origins: tuple[str, ...] = ()
    # The root log level (DEBUG, INFO, WARNING, ERROR) and format: `text` or `json` (one object
    # per line, for log collectors).
    log_level: str = "INFO"
    log_format: str = "text"

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ
        registration = env.get("ALLOW_REGISTRATION")
        types = env.get("FILE_ALLOWED_TYPES")
        origins = env.get("CORS_ORIGINS", "")
        return cls(
            database_url=env.get("DATABASE_URL", cls.database_url),
            app_env=env.get("APP_ENV", cls.app_env).strip().lower(),
            jwt_secret=env.get("JWT_SECRET", ""),
            jwt_expires_minutes=int(env.get("JWT_EXPIRES_MINUTES", cls.jwt_expires_minutes)),
            jwt_issuer=env.get("JWT_ISSUER", cls.jwt_issuer),
            refresh_expires_days=int(env.get("REFRESH_EXPIRES_DAYS", cls.refresh_expires_days)),
            allow_registration=(
                cls.allow_registration
                if registration is None
                else _flag("ALLOW_REGISTRATION", registration)
            ),
            login_max_attempts=int(env.get("LOGIN_MAX_ATTEMPTS", cls.login_max_attempts)),
            login_window_seconds=int(env.get("LOGIN_WINDOW_SECONDS", cls.login_window_seconds)),
            file_storage_dir=env.get("FILE_STORAGE_DIR", cls.file_storage_dir),
            file_max_bytes=int(env.get("FILE_MAX_BYTES", cls.file_max_bytes)),
            file_allowed_types=(
                cls.file_allowed_types
                if types is None
                else tuple(t.strip().lower() for t in types.split(",") if t.strip())
            ),
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            log_level=env.get("LOG_LEVEL", cls.log_level).strip().upper(),
            log_format=env.get("LOG_FORMAT", cls.log_format).strip().lower(),
        )

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    def checked(self) -> "Settings":
        """These settings, or a RuntimeError when they are unsafe; in development, a missing
        signing key is replaced by a random one."""
        env = self.app_env.strip().lower()
        if env not in ENVIRONMENTS:
            raise RuntimeError(
                f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}, not {self.app_env!r}"
            )
        if self.log_level not in LOG_LEVELS:
            raise RuntimeError(
                f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}"
            )
        if self.log_format not in LOG_FORMATS:
            raise RuntimeError(
                f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {self.log_format!r}"
            )
        settings = self.replace(app_env=env)
        if not USES_TOKENS:
            return settings
        problem = secret_problem(settings.jwt_secret)
        if problem is None:
            return settings
        if env == "production":
            raise RuntimeError(
                f"JWT_SECRET {problem}; production needs a random key of at least "
                f"{SECRET_MIN_BYTES} bytes"
            )
        if settings.jwt_secret:
            raise RuntimeError(f"JWT_SECRET {problem}; unset it in {env} to use a random key")
        _LOG.warning("JWT_SECRET is unset: signing with a random key; tokens end with this process")
        return settings.replace(jwt_secret=secrets.token_urlsafe(48))


def secret_problem(secret: str) -> str | None:
    """What is wrong with a signing key, or None."""
    if not secret:
        return "is not set"
    lowered = secret.strip().lower()
    if any(lowered == p or lowered.startswith(p) for p in PLACEHOLDERS) or "change-me" in lowered:
        return "is a placeholder"
    if len(secret.encode()) < SECRET_MIN_BYTES:
        return f"is shorter than {SECRET_MIN_BYTES} bytes"
    return None
