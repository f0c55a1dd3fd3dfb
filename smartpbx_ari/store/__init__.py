"""Records: SQLAlchemy models and sessions (SQLite by default, PostgreSQL at scale)."""
