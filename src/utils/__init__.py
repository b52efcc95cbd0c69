"""What every other package uses: the user's errors, value rules, files written whole, the
commands' argument parser (one-line mistakes). Torch-free."""
