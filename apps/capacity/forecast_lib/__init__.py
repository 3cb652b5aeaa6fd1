"""Numerical engine behind ``apps.capacity.forecasting``: series alignment, features, models and intervals."""
