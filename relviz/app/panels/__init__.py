"""The dock panels; each is a view of the one :class:`~relviz.app.state.AppState`."""
