"""uploader."""
