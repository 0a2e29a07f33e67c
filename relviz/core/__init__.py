"""Qt-free, display-free foundations: trace, capture, devices, errors and file readers."""
