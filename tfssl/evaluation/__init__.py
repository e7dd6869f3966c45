"""tfssl.evaluation."""
