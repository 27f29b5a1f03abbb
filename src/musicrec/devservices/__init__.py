"""Local development services (SeaweedFS S3 for the DVC remote, the MLflow server); not part of the pipeline."""
