"""Storage of the control plane: SQLAlchemy Core tables, the engine and migrations."""
