"""Reports are the product: the typed report and its JSON schema, the one gate evaluator, and its
views (terminal summary, HTML page, `edgeq report`)."""
