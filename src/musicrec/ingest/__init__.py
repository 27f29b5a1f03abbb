"""Raw data in: the source registry, the streaming reader, one module per published format, the synthetic twin."""
