"""JarlPM: a product-management API (epics, features, user stories) on FastAPI and PostgreSQL."""
