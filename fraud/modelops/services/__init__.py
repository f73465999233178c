"""State changes of the model lifecycle, one module per part of it."""
