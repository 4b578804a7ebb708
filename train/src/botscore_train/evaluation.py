"""Held-out metrics of a model's scores: the numbers in the artifact and on the model card."""

from __future__ import annotations


def held_out_metrics(labels: list[int], p_bot: list[float]) -> dict[str, float]:
    """ROC AUC, log loss and Brier score of `p_bot` against `labels`, rounded for a stable artifact."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    return {
        "roc_auc": round(float(roc_auc_score(labels, p_bot)), 6),
        "log_loss": round(float(log_loss(labels, p_bot, labels=[0, 1])), 6),
        "brier_score": round(float(brier_score_loss(labels, p_bot)), 6),
    }
