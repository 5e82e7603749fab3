"""The example shop's one app: models, seed data, and views each spending time one known way."""
