"""Settings: one class, read from environment variables prefixed `SIGNPOST_` (and `.env`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"
PLACEHOLDER_SECRET = "change-me-in-production"


class Settings(BaseSettings):
    """Everything an operator can set; the defaults run the demo with no setup."""

    model_config = SettingsConfigDict(env_prefix="SIGNPOST_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = Field(
        default="sqlite:///var/signpost.db",
        description="SQLAlchemy URL: sqlite:///path (embedded) or postgresql+psycopg://... ",
    )
    secret_key: str = PLACEHOLDER_SECRET
    search_backend: Literal["sqlite", "elasticsearch"] = "sqlite"
    elasticsearch_url: str | None = None

    # Geocoding: offline tables always; an online geocoder only when an admin turns it on,
    # because a street address (possibly a client's) would otherwise reach a third party.
    geocoder: Literal["offline", "nominatim"] = "offline"
    geocoder_user_agent: str = "signpost-directory"
    geocoder_domain: str | None = None
    geocoder_scheme: Literal["http", "https"] = "https"
    geocoder_min_delay_seconds: float = 1.0
    geocode_cache_path: Path = Path("var/geocode-cache.sqlite")

    # The HSDS 3.1 API under /hsds/: public unless a token is set; a per-IP rate limit.
    hsds_api_token: str | None = None
    hsds_rate_limit_per_minute: int = Field(default=600, ge=0)

    # Referrals: when the case manager should check back, by urgency; when a referral with no
    # partner answer counts as idle on the work queue.
    referral_follow_up_days_urgent: int = Field(default=2, ge=1, le=365)
    referral_follow_up_days_soon: int = Field(default=7, ge=1, le=365)
    referral_follow_up_days_routine: int = Field(default=14, ge=1, le=365)
    referral_idle_days: int = Field(default=3, ge=1, le=365)

    # Notifications: messages to partners and case managers wait in an outbox; an SMTP sender
    # delivers them when a host is set (none by default: nothing leaves the machine unasked).
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    smtp_from: str = "signpost@localhost"
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The address users reach the app at, for links in notifications.",
    )

    # Partner listing updates: whether an admin approves partner edits before they show;
    # listings not verified for this many days count as stale.
    partner_edits_require_approval: bool = False
    stale_listing_days: int = Field(default=365, ge=1, le=3650)

    # Web sessions (signed cookies): absolute lifetime, idle timeout, Secure flag (set it to
    # false only for plain-HTTP development on 127.0.0.1).
    session_max_hours: int = Field(default=10, ge=1, le=72)
    session_idle_minutes: int = Field(default=30, ge=1, le=1440)
    cookie_secure: bool = True

    # The map on the search page: a tile URL template ({z}/{x}/{y}); empty means no tiles
    # (the map still shows the results' markers). No tiles by default: nothing leaves the
    # machine unasked.
    map_tile_url: str = ""
    map_tile_attribution: str = ""

    demo_notice: bool = Field(
        default=True,
        description="Say on every page and response that the bundled data is old demo data.",
    )

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.environment == "production" and self.secret_key == PLACEHOLDER_SECRET:
            raise ValueError("SIGNPOST_SECRET_KEY must be set to a real secret in production")
        return self


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
