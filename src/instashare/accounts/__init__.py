"""Accounts: registration, login and the current user."""
