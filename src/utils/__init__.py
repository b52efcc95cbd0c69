"""What every other package uses: the user's errors, value rules, files written whole. Torch-free."""
