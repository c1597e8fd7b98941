"""The alternatives to weight interpolation, as generators with one strength dial each (see :mod:`clm.methods.base`)."""
