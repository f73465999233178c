"""The model lifecycle: history in (generated, simulated, imported, replayed), training,
evaluation, promotion and shadowing, drift."""
