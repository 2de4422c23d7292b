"""Monitoring of the scored predictions: drift statistics, checks, the report and
``fraud-monitor`` (README "Promotion and monitoring")."""
