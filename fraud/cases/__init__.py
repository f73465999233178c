"""Cases: opened when scoring flags a transaction, worked by analysts, closed with an outcome
that labels the transaction."""
