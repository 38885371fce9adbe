"""Function blocks that call Python functions in-process."""
