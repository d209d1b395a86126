"""Reading and writing data sets: the file format, the chunked input reader, Arrow blocks and
atomic file writes. Used by the batch job, the clients and the benchmarks; no protobuf here."""
