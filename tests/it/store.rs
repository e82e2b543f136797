//! Storage tests on SQLite, and on PostgreSQL when DATABASE_URL is set.
