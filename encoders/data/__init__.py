"""On-disk data formats (parquet) and the importers/generators that produce them."""
