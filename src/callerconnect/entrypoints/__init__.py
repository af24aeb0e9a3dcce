"""Long-running commands too big for cli.py: each wires settings to adapters and runs."""
