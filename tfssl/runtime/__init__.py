"""tfssl.runtime."""
