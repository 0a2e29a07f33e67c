"""The desktop application (PySide6 + pyqtgraph): the only package of relviz that imports Qt."""
