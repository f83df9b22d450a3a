"""bbam-lite."""
