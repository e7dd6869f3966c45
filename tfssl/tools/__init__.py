"""tfssl.tools."""
