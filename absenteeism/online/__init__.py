"""The online runtime: raw records of a request -> features -> predictions, from a ServingConfig.

`predictor` is the seam every online path implements; `reference` runs a Hamilton driver per call,
`fast` the same graph planned once at boot; `converters` is where protobuf meets numpy and pandas.
"""
