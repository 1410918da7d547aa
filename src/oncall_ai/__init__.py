"""oncall-ai: triage for AI features on call."""

__version__ = "0.1.0"
