"""The SQL backends (SQLite and PostgreSQL) over SQLAlchemy 2 Core."""
