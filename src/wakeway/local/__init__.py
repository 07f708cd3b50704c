"""Local mode: the same components in one process with a local process provider."""
