"""Alembic environment: runs on the engine the program hands over, never on a URL in a file."""

from alembic import context

from newsletter.errors import StoreError
from newsletter.store.schema import metadata

engine = context.config.attributes["engine"]
sqlite = engine.dialect.name == "sqlite"

with engine.connect() as connection:
    if sqlite:
        # Batch migrations rebuild a SQLite table (copy, drop, rename), and dropping a parent
        # table with foreign keys on cascades into its children's rows. SQLite ignores this
        # pragma inside a transaction, so it goes to the driver before one begins (SQLite's
        # own recipe for altering a table); it is turned back on below, whatever happens.
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=sqlite,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise StoreError(f"a migration left rows pointing at nothing: {broken[:5]}")
        connection.commit()
    finally:
        if sqlite:
            connection.rollback()
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
