"""Documents: uploads, listing, renames, deletes and downloads."""
