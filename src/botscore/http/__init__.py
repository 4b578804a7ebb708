"""The HTTP layer: ASGI routes that turn requests into calls of the data plane and calls into responses."""
