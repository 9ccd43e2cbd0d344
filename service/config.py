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
