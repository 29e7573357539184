"""Privacy: API keys, consent, pseudonymization, erasure and retention."""
