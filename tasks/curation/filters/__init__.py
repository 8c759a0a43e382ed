"""The per-document filters of the filter pass: one step interface (step.py), one file per
filter, the registry that maps each config name to its class (registry.py) and the chain
that runs them in the configured order (chain.py)."""
