"""Ingestion: validation, idempotency, bulk import and the simulated world."""
