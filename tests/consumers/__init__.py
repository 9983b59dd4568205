"""The data-reading side of the programs unimm's exports feed, rewritten as small readers that
keep each one's contract (file names, fields, roles, image token placement, image paths) and fail
where the original would. Each module names the upstream file and commit it follows."""
