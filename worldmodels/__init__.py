"""Latent sequence world models whose backbone is a plug-in (RSSM, TSSM, S4WM) and energy-based world models."""
