"""MLflow logging of searches and trials, the live console view, and reports."""
