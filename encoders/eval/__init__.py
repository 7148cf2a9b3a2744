"""Offline evaluation: Recall@k over a pin index, nDCG/P@k from judgments, baselines, reports."""
