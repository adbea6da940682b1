"""Shares: secret links (expiry, password, download limits, receipts) and sharing with people."""
