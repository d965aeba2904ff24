"""What every capability shares: keys and pseudonyms, the manifest, atomic I/O."""
