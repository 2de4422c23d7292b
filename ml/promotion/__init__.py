"""Promotion: move the champion alias after the gates pass, roll back, and record every
decision in audit.model_promotions (``fraud-promote``; README "Promotion and monitoring")."""
