"""Runs store, dashboard web page and the `report`/`dashboard` commands."""
