"""Features: the model's inputs, defined once (``definitions``, no Django) and read from the
database online, for one transaction, and offline, for history (``store``)."""
