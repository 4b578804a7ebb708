"""The model card's guidance: what the model is for and not for, its data, how it fails, how to pick a
threshold and what to watch. Every figure is computed from the artifact and the rows the card is drawn
from, so the prose cannot drift from the model it describes.
"""

from __future__ import annotations

from collections.abc import Sequence

from botscore.model.scorer import Scorer

# False-positive budgets a checkout team might set: the share of humans it accepts to challenge.
FP_BUDGETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.10)
# Points that show a failure mode: (x1, x2, what it is).
FAILURE_POINTS = (
    (1.75, 1.0, "a person taking a minute to pay, from an IP with 9 attempts in the hour (a small office)"),
    (1.75, 1.5, "the same person behind carrier NAT, 31 attempts from the IP in the hour"),
    (1.75, 2.0, "the same person behind a busy carrier NAT, 99 attempts from the IP in the hour"),
    (0.6, 0.0, "a person paying in 4 s with a saved card and express checkout, alone on the IP"),
    (1.45, 0.25, "a careful bot that waits 28 s and uses a fresh residential IP"),
)


def thresholds_for_budgets(y: Sequence[int], p_bot: Sequence[float]) -> list[tuple[float, float, float, float, float]]:
    """For each budget: (budget, threshold, false-positive rate, recall, precision) on these rows.

    The threshold is the lowest score whose false-positive rate stays within the budget: it catches
    the most bots the budget allows. A transaction is flagged when p_bot >= threshold.
    """
    import math

    from sklearn.metrics import roc_curve

    fpr, _tpr, cuts = roc_curve(list(y), list(p_bot))
    bots = sum(y)
    humans = len(y) - bots
    rows = []
    for budget in FP_BUDGETS:
        best = max(i for i in range(len(fpr)) if fpr[i] <= budget)
        # Rounded up to the 4 decimals shown, so the threshold as printed keeps within the budget.
        threshold = min(math.ceil(float(cuts[best]) * 10_000) / 10_000, 1.0)
        flagged = [label for p, label in zip(p_bot, y, strict=True) if p >= threshold]
        caught, flagged_humans = sum(flagged), len(flagged) - sum(flagged)
        precision = caught / len(flagged) if flagged else 1.0
        rows.append((budget, threshold, flagged_humans / humans, caught / bots, precision))
    return rows


def sections(
    scorer: Scorer,
    features: Sequence[Sequence[float]],
    y: Sequence[int],
    p_bot: Sequence[float],
    *,
    data_description: str,
    threshold: float,
    false_positive_rate: float,
) -> list[str]:
    """The card's guidance sections, as Markdown lines."""
    bots = sum(y)
    share = bots / len(y)
    x1s = sorted(row[0] for row in features)
    x2s = sorted(row[1] for row in features)
    budgets = thresholds_for_budgets(y, p_bot)
    return [
        "## What it is for",
        "",
        "A score for each checkout of a payments or e-commerce platform: the probability that a bot (a",
        "script, a card-testing or scalping tool) rather than a person submitted it. Its users are the",
        "checkout backend, which calls the service once per payment, and the risk team that sets the",
        "threshold and reads the audit log. It is meant to choose *how much friction* a checkout gets:",
        "pass it, ask for a challenge (a CAPTCHA, a 3-D Secure step-up), or queue it for review.",
        "",
        "## What it must not be used for alone",
        "",
        "- Declining a payment or blocking a customer on the score alone. At p_bot >= "
        f"{threshold} it flags {false_positive_rate:.2%} of people on the rows below; at a million checkouts "
        f"a day that is {false_positive_rate * 1e6 * (1 - share):,.0f} people. A flag should lead to a "
        "challenge a person can pass, or be combined with other signals.",
        "- Fraud by people: a person using a stolen card pays at a human pace from a quiet IP and scores as a",
        "  human. It measures bot-likeness, not fraud, account takeover, credit or identity.",
        f"- Traffic unlike its data: x1 outside {x1s[len(x1s) // 200]:.2f} to {x1s[-len(x1s) // 200 - 1]:.2f} "
        f"or x2 above {x2s[-len(x2s) // 200 - 1]:.2f} (the 0.5th and 99.5th percentiles) is extrapolation, and",
        "  a score near 0 or 1 there means far from the data, not certain.",
        f"- A population whose bot share is not {share:.0%} (the rows below): p_bot is calibrated to that share.",
        "  The ranking (ROC curve) still holds elsewhere; the probabilities need recalibrating on your own",
        "  labelled rows before they are read as probabilities.",
        "",
        "## Training data",
        "",
        data_description,
        "",
        "## Known failure modes",
        "",
        "What the model answers where it is wrong, or close to it, computed from the artifact:",
        "",
        "| x1 | x2 | p_bot | who |",
        "| --- | --- | --- | --- |",
        *(f"| {a} | {b} | {scorer.p_bot(a, b):.3f} | {who} |" for a, b, who in FAILURE_POINTS),
        "",
        "- **Shared IPs: carrier-grade NAT, mobile networks, offices, campuses, VPNs.** Many people share one",
        "  public IP, so x2 is high for people who tried once; the model cannot tell them from a bot",
        "  retrying, and flags them (false positives). The synthetic data holds few such people, so the",
        "  metrics below understate it: watch the flag rate per network (the audit log has no IP; join on",
        "  the payment id) and lower x2's weight or add an allow-list for known NAT ranges if it bites.",
        "- **Fast people:** saved cards, autofill and one-click checkouts make people quick, so a low x1 alone",
        "  raises the score.",
        "- **Careful bots:** a bot that waits like a person and rotates residential IPs scores as a person",
        "  (false negatives); the score is one layer, not the defence.",
        "- **Drift:** a change to the checkout page (a new step, express pay) moves x1 for everyone, and the",
        "  flag rate with it, without any change in bots.",
        "",
        "## Choosing a threshold",
        "",
        "Start from the share of people you can afford to challenge (the false-positive budget), not from",
        "0.5. For each budget, the lowest threshold that stays within it on the rows below (read off the",
        "ROC curve), and what it catches. Precision depends on the share of bots in your traffic",
        f"({share:.0%} here): with fewer bots, more of the flagged are people.",
        "",
        "| false-positive budget | flag when p_bot >= | people flagged | bots caught (recall) "
        "| flagged that are bots |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {budget:.1%} | {cut:.4f} | {fpr:.2%} | {recall:.1%} | {precision:.1%} |"
            for budget, cut, fpr, recall, precision in budgets
        ),
        "",
        "Check the choice on your own labelled traffic (`botscore import-model --data` or `botscore train",
        "--data` give this table for any CSV), and keep the threshold in the caller: the service returns the",
        "score, the checkout decides.",
        "",
        "## What to monitor in production",
        "",
        "- `botscore_p_bot` (histogram): the share of scores above your threshold. A jump is a bot campaign,",
        "  a broken client, or drift; tell them apart with the features.",
        f"- `botscore_feature_x1`, `botscore_feature_x2` (histograms): against the data's medians here, x1 "
        f"{x1s[len(x1s) // 2]:.2f} and x2 {x2s[len(x2s) // 2]:.2f}. A shifted median means the model is scoring "
        "traffic it was not trained on.",
        "- Drift (`DriftX1`, `DriftX2`, `DriftScore` in CloudWatch, each EMF interval; the Athena query",
        "  `feature-drift-per-day` per day): the population stability index of live traffic against this",
        "  model's training rows, over the same histogram buckets (the artifact's `baseline`). Under 0.1:",
        "  stable. 0.1 to 0.2: look at what changed (a new client, a campaign). Over 0.2 for a feature: the",
        "  model scores traffic unlike what it learned from; check recall and false positives on labelled",
        "  outcomes and retrain on recent data; the `feature-drift` alarm fires there. A shift of one standard",
        "  deviation of a feature scores about 1.",
        "- Outcomes: send the payment's id as `X-Request-ID` (docs/clients.md), so each audit row joins the",
        "  payment's fate (challenge passed or failed, chargeback) in Athena; recompute the false-positive",
        "  rate and recall on those labels each month, and retrain or move the threshold when they move.",
        "- The callers' fail-open count (answers not used because of a timeout or an error): a score that is",
        "  not used protects nothing.",
        "",
    ]
