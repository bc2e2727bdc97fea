"""Model families: each says what to optimise through the contract in `base.py`."""
