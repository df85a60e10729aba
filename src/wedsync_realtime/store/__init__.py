"""The server's own tables and the example WedSync schema: versioned SQL migrations."""

from wedsync_realtime.store.migrate import Migration, MigrationError, load_migrations, migrate

__all__ = ["Migration", "MigrationError", "load_migrations", "migrate"]
