"""The jobs users run (`python -m ray_jobs.<job>`): thin CLIs over the `discriminator` library."""
