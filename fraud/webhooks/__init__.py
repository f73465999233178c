"""Webhooks: events an API client (or an admin) wants pushed, written to an outbox in the same
database transaction as the change, and delivered signed (Standard Webhooks) with retries."""
