"""Test support that ships with the package: a scripted fake provider server."""
