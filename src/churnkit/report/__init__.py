"""Figures, the model card and the HTML report."""
