"""The governance store: tables, migrations, unit of work, audit chain and outbox relay."""
