"""Alembic environment: migrations run on the connection the control plane hands in."""

from alembic import context

from controlplane.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through Database.migrate() or `beeldbel migrate`"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
