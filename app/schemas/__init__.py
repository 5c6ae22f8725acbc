"""Request and response schemas (Pydantic), separate from the registry's records."""
