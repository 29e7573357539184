"""The HTTP service: a FastAPI app over the library (routers per resource, auth, limits)."""
