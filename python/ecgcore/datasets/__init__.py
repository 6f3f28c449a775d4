"""Dataset conventions: MIT-BIH splits and AAMI classes, noise mixing."""
