"""Synthetic exports: the demo generator, the independent holdout tactics, and
randomised worlds. Workshop code: the product never imports it."""

from .generator import FORMATS, SCENARIOS, SynthResult, add_prospecting_shops, generate

__all__ = ["FORMATS", "SCENARIOS", "SynthResult", "add_prospecting_shops", "generate"]
