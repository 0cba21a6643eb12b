"""What the test tiers share: the offline wheelhouse, course builders, process checks."""
