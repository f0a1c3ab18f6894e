"""Clustering quality on our labelled near-duplicate set, through the real store, on both
databases: the same event told by different outlets is one story; different events about the
same companies (an inquiry opened, the same deal cleared months later) stay apart."""

from __future__ import annotations

from bench.stories import cluster_through_store, pairwise


def test_pairwise_precision_and_recall_at_least_0_9(db_url: str) -> None:
    labels, stories = cluster_through_store(db_url)
    precision, recall, *_ = pairwise(labels, stories)
    assert precision >= 0.9, precision
    assert recall >= 0.9, recall
    # The hard negatives: same parties, months apart; same regulator and action, other parties.
    by_label = dict(zip(labels, stories, strict=False))
    assert (
        by_label["amazon-anthropic-itc"] != by_label["amazon-anthropic-phase1"] != by_label["amazon-anthropic-cleared"]
    )
    assert by_label["google-anthropic-itc"] != by_label["amazon-anthropic-itc2"]
    assert by_label["ms-mistral-itc"] != by_label["amazon-anthropic-itc"]
