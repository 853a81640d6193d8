"""The calculus layer: reverse derivatives, lenses, Para, learners, Poly."""
