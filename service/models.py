"""Every table of the application, imported in one place for migrations and tests."""

import service.accounts.tables  # noqa: F401
import service.audit.tables  # noqa: F401
import service.clients.tables  # noqa: F401
import service.notifications.tables  # noqa: F401
import service.referrals.tables  # noqa: F401
from service.directory.tables import metadata  # noqa: F401
