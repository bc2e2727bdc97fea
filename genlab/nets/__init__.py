"""Plain networks with no training logic, shared by the model families."""
