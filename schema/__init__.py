"""Strawberry types, inputs and enums; :func:`build_schema` assembles the schema."""
