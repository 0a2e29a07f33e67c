"""Qt-free rendering: colormaps, overlays and paper figures (matplotlib Agg/PDF/SVG)."""
