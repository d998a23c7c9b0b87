"""The SQL databases the gateway uses, whoever uses them: runners (one writer and a
reader pool for SQLite, an async engine for PostgreSQL), the schema lock, and the
DB-API fast path for prebuilt statements. The SQL user store, the outbound queue and
the state database's tables (``gateway.state``) all build on it."""
