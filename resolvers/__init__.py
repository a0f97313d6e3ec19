"""Thin GraphQL resolvers: read arguments, call a service, hand back domain objects."""
