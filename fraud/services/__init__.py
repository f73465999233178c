"""State changes of the fraud domain. Views, admin actions, commands and tasks call these;
nothing else writes."""

from fraud.services.batches import (
    BatchInputError,
    batch_cancel,
    batch_create_from_csv,
    batch_create_from_items,
    batch_jobs_resume_stalled,
    batch_process_next_chunk,
    batch_result_lines,
)
from fraud.services.cases import (
    case_add_note,
    case_assign,
    case_close,
    case_escalate,
    case_open_for,
    case_take_next,
    cases_bulk_assign,
    cases_bulk_close,
)
from fraud.services.lifecycle import (
    model_retrain,
    model_train,
    model_version_activate,
    model_version_set_shadow,
    thresholds_update,
    training_windows,
)
from fraud.services.transactions import (
    IdempotencyConflictError,
    ScoreOutcome,
    canonical_hash,
    history_generate,
    history_replay,
    transaction_label,
    transaction_score,
    transactions_score_many,
)

__all__ = [
    "BatchInputError",
    "batch_cancel",
    "batch_create_from_csv",
    "batch_create_from_items",
    "batch_jobs_resume_stalled",
    "batch_process_next_chunk",
    "batch_result_lines",
    "IdempotencyConflictError",
    "ScoreOutcome",
    "canonical_hash",
    "case_add_note",
    "case_assign",
    "case_close",
    "case_escalate",
    "case_open_for",
    "case_take_next",
    "cases_bulk_assign",
    "cases_bulk_close",
    "history_generate",
    "history_replay",
    "model_retrain",
    "model_train",
    "model_version_activate",
    "model_version_set_shadow",
    "thresholds_update",
    "training_windows",
    "transaction_label",
    "transaction_score",
    "transactions_score_many",
]
