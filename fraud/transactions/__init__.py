"""Transactions as they are stored: the fields a client may send and how they are checked, the
row built from a validated body, the card vault, labels, and a client's reads of its own rows."""
