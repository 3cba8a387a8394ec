"""S3 server fixtures (filled in by the S3 store work)."""
