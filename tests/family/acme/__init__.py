"""Acme Widgets: a family of the tests' own, registered as a plug-in (Settings.families) with no edit elsewhere."""
