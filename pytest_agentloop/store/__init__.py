"""Results history in SQLite or PostgreSQL: `sql` (dialects, schema, connection), `history` (reads and
writes), `plugin` (the pytest side). The names most callers need are re-exported here."""

from pytest_agentloop.store.history import ResumeKey, Store, cell_key, model_digest, open_store
from pytest_agentloop.store.sql import DEFAULT_URL, StoreError

__all__ = ["DEFAULT_URL", "ResumeKey", "Store", "StoreError", "cell_key", "model_digest", "open_store"]
