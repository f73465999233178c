"""Batch jobs: uploads scored chunk by chunk by workers, with progress, cancellation and
streamed results."""
