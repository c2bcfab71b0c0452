"""What users see of a search: the console view (``console.SearchConsole``), MLflow runs
(``mlflow_tracker.MlflowTracker``), both ``dnc.search.events.SearchObserver``s, and the
performance-complexity front of ``python -m dnc.report`` (``front``)."""
