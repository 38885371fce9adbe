"""Block types: the contract (base), the registry, and one module per block family."""
