"""Reports are the product: the JSON schema, its terminal summary and its HTML page."""
