"""Project files: YAML reading, config.yml / endpoints / credentials, domain, training data."""
