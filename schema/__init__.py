"""Strawberry types, inputs, enums and unions only (``resolvers.root`` builds the schema).

Nested fields that need data ask the request context through ``schema.context.Resolve``;
nothing here imports the resolvers, the ORM or the database driver.
"""
