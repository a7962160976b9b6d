"""score_geometry: local geometry of diffusion-model score fields (Wenliang & Moran)."""

__version__ = "0.1.0"
