"""Built-in dnc plugin dnc_cnn (in progress)."""
