"""Every table of the application, imported in one place for migrations and tests."""

from service.directory.tables import metadata  # noqa: F401
