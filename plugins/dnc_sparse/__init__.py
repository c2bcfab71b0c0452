"""Built-in dnc plugin dnc_sparse (in progress)."""
