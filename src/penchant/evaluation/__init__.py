"""Offline evaluation: protocols, metrics, statistics, tuning and reports."""
