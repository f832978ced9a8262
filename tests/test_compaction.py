"""When a batched solve drops its stopped members: only once the running share has fallen
enough to pay for the copy, with every member's result unchanged."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from autominimize.native.batched_lm import BatchedLM
from autominimize.native.compaction import ActiveRows


class State(NamedTuple):
    x: np.ndarray
    reason: np.ndarray


def take(tree: tuple, rows: np.ndarray) -> tuple:
    state, data = tree
    return State(*(v[rows] for v in state)), data


def test_members_stopping_one_by_one_are_dropped_only_below_three_quarters_of_the_width():
    members = 16
    rows = ActiveRows(members, padded=False)
    state, widths = State(np.arange(members, dtype=float), np.zeros(members, dtype=np.int32)), []
    for step in range(1, members + 1):
        # member `step - 1` stops at this step; the running ones move on
        reason = np.where(rows.index < step, 1, 0).astype(np.int32)
        reason[rows.index < 0] = 1
        state = state._replace(x=np.where(reason == 0, state.x + 100, state.x), reason=reason)
        state, _ = rows.compact(state, (), take)
        if state is None:
            break
        widths.append(state.x.size)
    # 16 rows until 12 run, then 12 until 9, 9 until 6, 6 until 4, then 3, 2, 1: seven copies
    assert widths == [16] * 3 + [12] * 3 + [9] * 3 + [6] * 2 + [4, 3, 2, 1]
    assert rows.compactions == 7
    final = rows.result(State)
    np.testing.assert_array_equal(final.x, np.arange(members) + 100.0 * np.arange(members))
    np.testing.assert_array_equal(final.reason, np.ones(members))


def test_members_of_a_batch_get_the_results_they_get_alone():
    """Members that stop at different iterations (and stay in the batch, masked, until the next
    compaction) end exactly where each ends solved on its own."""
    t = np.linspace(0.0, 4.0, 30)
    rng = np.random.default_rng(3)
    truth = rng.uniform([0.5, 0.2], [3.0, 2.0], size=(40, 2))
    y = truth[:, :1] * np.exp(-truth[:, 1:] * t) + 0.01 * rng.normal(size=(40, t.size))

    def evaluate(x, y):
        e = np.exp(-x[:, 1:] * t)
        return x[:, :1] * e - y, np.stack([e, -x[:, :1] * t * e], axis=-1)

    x0 = rng.uniform(0.5, 1.5, size=(40, 2))
    batch = BatchedLM().run(x0, evaluate, (y,))
    alone = [BatchedLM().run(x0[i : i + 1], evaluate, (y[i : i + 1],)) for i in range(40)]
    assert len(set(batch.nfev.tolist())) > 5  # the members stop apart
    for field in ("x", "cost", "nfev", "reason"):
        np.testing.assert_array_equal(getattr(batch, field), np.concatenate([getattr(a, field) for a in alone]))
