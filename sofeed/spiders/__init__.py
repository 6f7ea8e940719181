"""Spiders of the sofeed project: one spider per module."""
