"""The offline demo: a sample collection from real third-party data, indexed, searched and reported."""
