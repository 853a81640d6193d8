"""The core layer: wire types, the primitive signature and the Diagram."""
