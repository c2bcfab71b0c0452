"""Built-in dnc plugin dnc_hwcost (in progress)."""
