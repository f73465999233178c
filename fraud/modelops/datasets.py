"""Generated histories as the features see them: rows in the stored layout, and the Frame that
reading them back from the database would give. Model-quality runs and tests use these to work
on generated data without storing it."""

from __future__ import annotations

from fraud.features import definitions as fx
from fraud.features.store import frame_from_rows
from fraud.modelops.generator import Generated
from fraud.models import Label


def generated_rows(g: Generated, *, owner_id: int = 1) -> list[tuple]:
    """A generated history as stored rows in ``HISTORY_FIELDS`` order (ids from 1), as if it
    had been stored for ``owner_id``."""
    return [
        (
            i + 1,
            owner_id,
            g.customer_id[i],
            g.merchant_id[i],
            g.country[i],
            g.channel[i],
            fx.from_epoch_us(g.ts_us[i]),
            g.amount[i],
            Label.FRAUD.value if g.scenario[i] else "",
            fx.from_epoch_us(g.label_time_us[i]) if g.scenario[i] else None,
            "",
            g.currency[i],
        )
        for i in range(len(g))
    ]


def frame_from_generated(g: Generated, *, owner_id: int = 1) -> fx.Frame:
    """A generated history as a Frame, as if it had been stored for ``owner_id`` and read back."""
    return frame_from_rows(generated_rows(g, owner_id=owner_id))[0]
