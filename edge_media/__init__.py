"""edge_media."""
