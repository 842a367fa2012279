"""Hydra YAML configs, shipped inside the package so an installed mnemax finds them."""
