"""`edgeq calib`: calibration files built from a user's real data (images, tables, audio, text),
named after the model's inputs and checked against their dtypes and shapes."""
