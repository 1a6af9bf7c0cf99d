"""Charges customers through Acme Billing."""
