"""Thin GraphQL resolvers: read arguments, call a service, map the result to GraphQL types.

``root`` binds them to the root types (Query, Mutation, Subscription) and builds the schema;
``context`` serves the schema types' nested fields; ``mapping`` turns domain objects into
GraphQL types.
"""
