"""The views layer: a trace plus a selection → exactly what is drawn, with no Qt and no torch.

The window's panels, the paper figures (``relviz.render``) and the video overlays all read from here, so
what the window shows and what a figure shows come from one computation (DESIGN §2).
"""
