"""Tools around the service, not part of it: offline analysis of a file, its timeline plot, the demo,
sample media generation and a local S3 dev server (moto) for the demo and the tests."""
